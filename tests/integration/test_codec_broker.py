"""Every record type survives a real broker: produced with confluent-kafka, read back with
both confluent-kafka and aiokafka, decoded to exactly what was sent."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, Producer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.codec import Codec
from streams.kafka.config import client_config
from streams.records import Record
from streams.settings import Settings
from tests.integration.helpers import create_topics
from tests.unit.codec.strategies import ALL_RECORDS

CODEC = Codec()
PER_TYPE = 8
batches = st.fixed_dictionaries(
    {
        name: st.lists(strategy, min_size=PER_TYPE, max_size=PER_TYPE)
        for name, strategy in ALL_RECORDS.items()
    }
)


def produce(settings: Settings, topic: str, records: list[Record]) -> list[bytes]:
    producer = Producer(client_config(settings, **{"partitioner": "murmur2_random"}))
    sent = []
    for index, record in enumerate(records):
        value = CODEC.encode(record)
        producer.produce(topic, value, key=str(index).encode(), partition=0)
        sent.append(value)
    assert producer.flush(30) == 0
    return sent


def read_confluent(settings: Settings, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        client_config(settings, **{"group.id": f"{topic}-c", "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    try:
        while len(values) < count:
            message = consumer.poll(10)
            assert message is not None, f"only {len(values)} of {count} records came back"
            assert message.error() is None
            values.append(message.value())
    finally:
        consumer.close()
    return values


async def read_aiokafka(settings: Settings, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{topic}-a",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, f"only {len(values)} of {count} records came back"
            for messages in batch.values():
                values += [m.value for m in messages]
    finally:
        await consumer.stop()
    return values


def test_every_record_type_round_trips_through_the_broker(kafka_settings: Settings) -> None:
    examples = iter(range(100))

    @settings(
        max_examples=3,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches)
    def check(by_type: dict[str, list[Record]]) -> None:
        topic = f"{kafka_settings.topic_prefix}.codec{next(examples)}"
        create_topics(kafka_settings, [topic], partitions=1)
        records = [record for name in sorted(by_type) for record in by_type[name]]
        sent = produce(kafka_settings, topic, records)
        for received in (
            read_confluent(kafka_settings, topic, len(records)),
            asyncio.run(read_aiokafka(kafka_settings, topic, len(records))),
        ):
            assert received == sent
            assert [CODEC.decode(value, topic=topic) for value in received] == records

    check()
