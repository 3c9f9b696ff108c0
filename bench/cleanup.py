"""What every benchmark does last: remove the topics and database of its run."""

from __future__ import annotations


async def cleanup(prefix: str) -> None:
    """Remove the run's topics and database: a broker with hundreds of leftover topics is slower."""
    from aiokafka.admin import AIOKafkaAdminClient

    from shared.contract import Topics
    from shared.settings import Settings
    from shared.store import mongo_client

    admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9092")
    await admin.start()
    try:
        await admin.delete_topics([s.name for s in Topics(prefix=prefix).specs()])
    finally:
        await admin.close()
    client = mongo_client(Settings())
    await client.drop_database(prefix)
    await client.close()
