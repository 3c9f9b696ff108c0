"""The dispatcher's contact book: where to reach each customer, from ``customer.upserted``.

The engine keeps no addresses (its state is a Kafka changelog many services read); the dispatcher,
the one service that needs them, keeps them in MongoDB's ``contacts`` collection. Consents are
checked again here at delivery time, so a withdrawn consent wins over an action already requested.
"""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from shared.contract.events import CustomerUpserted
from shared.store import Collections, Document


async def remember(db: AsyncDatabase[Document], data: CustomerUpserted, at: datetime) -> None:
    """Store the latest profile; an older one read late does not overwrite a newer one."""
    contacts = db[Collections.CONTACTS]
    known = await contacts.find_one({"_id": data.customer_id}, {"updated_at": 1, "email": 1, "phone": 1, "locale": 1})
    if known is not None and known["updated_at"] > at:
        return
    doc = {
        "email": data.email or (known or {}).get("email"),
        "phone": data.phone or (known or {}).get("phone"),
        "locale": data.locale or (known or {}).get("locale"),
        "consents": data.consents.model_dump(),
        "updated_at": at,
    }
    await contacts.replace_one({"_id": data.customer_id}, doc, upsert=True)


async def lookup(db: AsyncDatabase[Document], customer_id: str) -> Document | None:
    return await db[Collections.CONTACTS].find_one({"_id": customer_id})
