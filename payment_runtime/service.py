"""The service layer: each mutating operation as idempotent, recoverable phases.

Following Brandur Leach's design, a request runs as a chain of *atomic phases*, each one
PostgreSQL transaction that ends by recording a recovery point on the idempotency key;
the only non-transactional step, the Stripe call, sits between two phases and carries a
Stripe idempotency key derived from our own ids. A retried or resumed request continues
from the last recovery point, so the Stripe call is repeated with the same key at
most, and Stripe answers it with the original object: no second charge. A create's first
phase (the payment row) runs in the transaction that takes its key, so a new key is never
committed half-begun: two transactions a payment, not three. With risk checks on, the screen
(a Redis round trip) runs between the key's transaction and the payment's, once per key and
holding no database connection while Redis answers; a crash between the two leaves the key
at its first recovery point, and the retry screens (the same attempt is not counted twice)
and goes on. The key's insert and the payment's are then one statement each, committed
on their own (one round trip each, no BEGIN and COMMIT), and so is a new key of the other
operations.

Deterministic refusals (invalid state, card declined) are stored as the key's final
response; transient failures (Stripe unreachable, a crash, over the rate limit) release the
key's lock so the client's retry resumes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from payment_runtime import tracing
from payment_runtime.adapters import postgres as db
from payment_runtime.adapters.stripe_gateway import (
    CardDeclined,
    PaymentGateway,
    StripeRejected,
    StripeUnavailable,
)
from payment_runtime.domain import idempotency, payments, stripe_amounts, velocity, webhooks
from payment_runtime.domain.events import PaymentEvent, event_type_for
from payment_runtime.domain.idempotency import RecoveryPoint
from payment_runtime.domain.money import Money, MoneyError, currency
from payment_runtime.domain.payments import PaymentStatus
from payment_runtime.errors import ApiError
from payment_runtime.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """An HTTP status and JSON body, fresh or replayed from the idempotency key."""

    status: int
    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """The idempotency context of one mutating request."""

    scope: str  # the authenticated subject: keys of different clients never collide
    key: str
    method: str
    path: str
    fingerprint: str


@dataclass(slots=True)
class _Held:
    key_id: int
    recovery_point: RecoveryPoint
    resource_id: uuid.UUID | None


#: A first phase that runs in the transaction that takes a new key (one commit, not two).
_Claim = Callable[[db.Conn, _Held], Awaitable[None]]


def payment_json(row: dict[str, Any]) -> dict[str, Any]:
    """A payment as the API shows it."""
    code = str(row["currency"]).strip()
    return {
        "id": str(row["id"]),
        "amount": row["amount_minor"],
        "amount_display": Money(row["amount_minor"], currency(code)).format(),
        "currency": code,
        "customer": row["customer_id"],
        "payment_method": row["payment_method"],
        "description": row["description"],
        "status": row["status"],
        "amount_refunded": row["amount_refunded"],
        "stripe_payment_intent": row["stripe_payment_intent_id"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def refund_json(row: dict[str, Any]) -> dict[str, Any]:
    """A refund as the API shows it."""
    return {
        "id": str(row["id"]),
        "payment_id": str(row["payment_id"]),
        "amount": row["amount_minor"],
        "status": row["status"],
        "stripe_refund": row["stripe_refund_id"],
        "created_at": row["created_at"].isoformat(),
    }


def _not_found(payment_id: uuid.UUID) -> ApiError:
    return ApiError(404, "payment_not_found", f"no payment {payment_id}")


class PaymentService:
    """Payments, captures, cancellations, refunds and webhook events."""

    def __init__(
        self,
        pool: Any,
        gateway: PaymentGateway,
        metrics: Metrics,
        *,
        topic: str,
        lock_timeout: timedelta,
    ) -> None:
        self.pool = pool
        self.gateway = gateway
        self.metrics = metrics
        self.topic = topic
        self.lock_timeout = lock_timeout

    # --- idempotency machinery ---------------------------------------------------

    async def _begin(self, req: KeyRequest, claim: _Claim | None = None) -> _Held | Outcome:
        """Take the key: a new one is recorded and locked, and ``claim`` (the first phase)
        runs in the same transaction; an existing one is replayed, refused or relocked."""
        refusal: ApiError | None = None
        if claim is None:
            # A new key alone is one statement (one round trip, no BEGIN and COMMIT).
            async with db.statement(self.pool, "begin_key") as conn:
                key_id = await self._insert_key(conn, req)
            if key_id is not None:
                return _Held(key_id, RecoveryPoint.STARTED, None)
            # Taken before: read and lock it in a transaction (which inserts the key after
            # all if a purge removed it meanwhile).
        async with db.transaction(self.pool, "begin_key") as conn:
            key_id = await self._insert_key(conn, req)
            if key_id is None:
                return await self._existing(conn, req)
            held = _Held(key_id, RecoveryPoint.STARTED, None)
            if claim is None:
                return held
            try:
                await claim(conn, held)
                return held
            except ApiError as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise  # rolled back: as if the key had never been taken
                # A deterministic refusal, stored as the key's answer in this transaction.
                await db.finish_key(conn, key_id, exc.status, exc.body())
                refusal = exc
        assert refusal is not None
        raise refusal  # committed with the key

    @staticmethod
    async def _insert_key(conn: db.Conn, req: KeyRequest) -> int | None:
        return await db.insert_key(
            conn,
            scope=req.scope,
            key=req.key,
            method=req.method,
            path=req.path,
            fingerprint=req.fingerprint,
        )

    async def _existing(self, conn: db.Conn, req: KeyRequest) -> _Held | Outcome:
        """A key taken before: replay its answer, refuse, or relock it to resume."""
        row = await db.lock_existing_key(conn, scope=req.scope, key=req.key)
        assert row is not None  # inserted by a committed transaction, never deleted here
        stored = idempotency.StoredKey(
            row["request_fingerprint"], RecoveryPoint(row["recovery_point"]), row["locked_at"]
        )
        try:
            action = idempotency.decide(stored, req.fingerprint, row["db_now"], self.lock_timeout)
        except idempotency.IdempotencyError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from exc
        if action is idempotency.Action.REPLAY:
            return Outcome(int(row["response_code"]), row["response_body"], replayed=True)
        await db.relock_key(conn, int(row["id"]))
        return _Held(int(row["id"]), stored.recovery_point, row["resource_id"])

    async def _run(
        self,
        req: KeyRequest,
        phases: Callable[[_Held], Awaitable[Outcome]],
        claim: _Claim | None = None,
    ) -> Outcome:
        started = await self._begin(req, claim)
        if isinstance(started, Outcome):
            return started
        held = started
        try:
            return await phases(held)
        except ApiError as exc:
            if exc.status >= 500 or exc.status == 429:  # transient: a retry may succeed
                await self._release(held)
                raise
            # A deterministic refusal: the same request would be refused again.
            async with db.transaction(self.pool, "refuse_key") as conn:
                await db.finish_key(conn, held.key_id, exc.status, exc.body())
            raise
        except BaseException:
            await self._release(held)
            raise

    async def _release(self, held: _Held) -> None:
        try:
            async with db.transaction(self.pool, "release_key") as conn:
                await db.release_key(conn, held.key_id)
        except Exception:
            # The lock then expires after lock_timeout instead.
            log.exception("could not release idempotency key lock")

    async def _emit(self, conn: db.Conn, row: dict[str, Any], data: dict[str, Any]) -> None:
        event = PaymentEvent(
            event_id=str(uuid.uuid4()),
            event_type=event_type_for(row["status"]),
            payment_id=str(row["id"]),
            occurred_at=datetime.now(UTC),
            data=data,
        )
        await db.insert_outbox(conn, event, self.topic, tracing.carrier())

    # --- create ------------------------------------------------------------------

    async def create_payment(
        self,
        req: KeyRequest,
        money: Money,
        customer: str,
        payment_method: str,
        description: str | None,
        screen: Callable[[velocity.Attempt], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Create a payment; ``screen`` (the risk checks, :mod:`payment_runtime.risk`) sees
        the attempt of a new key before the payment exists and before Stripe, and raises its
        refusal: a 402 is stored as the key's answer like any other, a 429 or 503 releases
        the key."""

        attempt = velocity.Attempt(
            req.scope, req.key, customer, payment_method, money.currency.code, money.amount_minor
        )

        async def claim(conn: db.Conn, held: _Held) -> None:
            """Insert the payment: before Stripe, and for a new key (without a screen) in the
            transaction that takes it."""
            payment_id = uuid.uuid4()
            await db.insert_payment_of_key(
                conn,
                held.key_id,
                payment_id=payment_id,
                amount_minor=money.amount_minor,
                currency=money.currency.code,
                customer_id=customer,
                payment_method=payment_method,
                description=description,
                status=PaymentStatus.PENDING,
            )
            held.recovery_point = RecoveryPoint.RESOURCE_CREATED
            held.resource_id = payment_id

        async def phases(held: _Held) -> Outcome:
            # A key taken for a screen (or by a version that took keys on their own).
            if held.recovery_point is RecoveryPoint.STARTED:
                if screen is not None:
                    await screen(attempt)  # outside any transaction
                # The payment row and the key's move are one statement (insert_payment_of_key).
                async with db.statement(self.pool, "create_payment") as conn:
                    await claim(conn, held)
            assert held.resource_id is not None
            payment_id = held.resource_id
            charge = stripe_amounts.to_stripe(money)  # checked by the API already
            try:
                intent = await self.gateway.create_intent(
                    amount_minor=charge.amount,
                    currency=charge.currency,
                    payment_method=payment_method,
                    metadata={"payment_id": str(payment_id)},
                    idempotency_key=idempotency.stripe_key("create_intent", str(payment_id)),
                )
            except CardDeclined as exc:
                await self._finish_status(held, payment_id, PaymentStatus.FAILED, None, http=402)
                raise ApiError(
                    402,
                    "card_declined",
                    "the payment was declined",
                    {"payment_id": str(payment_id), "decline_code": exc.decline_code},
                ) from exc
            except StripeRejected as exc:
                # Stripe's minimum depends on the account's settlement currency: its verdict.
                small = exc.code == "amount_too_small"
                http, code = (422, "amount_too_small") if small else (402, "payment_rejected")
                await self._finish_status(held, payment_id, PaymentStatus.FAILED, None, http=http)
                raise ApiError(http, code, str(exc), {"payment_id": str(payment_id)}) from exc
            except StripeUnavailable as exc:
                raise ApiError(
                    503, "payment_provider_unavailable", "Stripe is unavailable; retry later"
                ) from exc
            status = payments.status_from_intent(intent.status)
            return await self._finish_status(held, payment_id, status, intent.id, http=201)

        return await self._run(req, phases, claim if screen is None else None)

    async def _finish_status(
        self,
        held: _Held,
        payment_id: uuid.UUID,
        target: PaymentStatus,
        intent_id: str | None,
        *,
        http: int = 200,
        amount_refunded: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Outcome:
        """One transaction: move the payment forward (if still allowed), write the outbox
        event, store the response on the key."""
        async with db.transaction(self.pool, "finish") as conn:
            row = await db.get_payment(conn, payment_id, for_update=True)
            if row is None:
                raise _not_found(payment_id)
            current = PaymentStatus(row["status"])
            moves = payments.can_transition(current, target) or (
                target is PaymentStatus.PARTIALLY_REFUNDED
                and amount_refunded is not None
                and amount_refunded > row["amount_refunded"]
            )
            if moves or (intent_id and row["stripe_payment_intent_id"] is None):
                row = await db.update_payment(
                    conn,
                    payment_id,
                    status=target if moves else current,
                    amount_refunded=amount_refunded,
                    intent_id=intent_id,
                )
            if moves:
                await self._emit(
                    conn,
                    row,
                    {
                        "amount": row["amount_minor"],
                        "currency": str(row["currency"]).strip(),
                        "amount_refunded": row["amount_refunded"],
                    },
                )
            body = payment_json(row) if extra is None else {**extra, "payment": payment_json(row)}
            if http < 400:
                await db.finish_key(conn, held.key_id, http, body)
        return Outcome(http, body)

    # --- capture / cancel --------------------------------------------------------

    async def _load_checked(
        self, payment_id: uuid.UUID, check: Callable[[PaymentStatus], None]
    ) -> dict[str, Any]:
        async with db.connection(self.pool, "load_payment") as conn:
            row = await db.get_payment(conn, payment_id)
        if row is None:
            raise _not_found(payment_id)
        try:
            check(PaymentStatus(row["status"]))
        except payments.TransitionError as exc:
            raise ApiError(409, exc.code, str(exc), {"status": row["status"]}) from exc
        if row["stripe_payment_intent_id"] is None:
            raise ApiError(409, "invalid_state_transition", "payment has no PaymentIntent")
        return row

    async def capture(self, req: KeyRequest, payment_id: uuid.UUID) -> Outcome:
        async def phases(held: _Held) -> Outcome:
            row = await self._load_checked(payment_id, payments.check_capture)
            try:
                await self.gateway.capture(
                    row["stripe_payment_intent_id"],
                    idempotency_key=idempotency.stripe_key("capture", str(payment_id)),
                )
            except (CardDeclined, StripeRejected) as exc:
                raise ApiError(409, "capture_refused", str(exc)) from exc
            except StripeUnavailable as exc:
                raise ApiError(503, "payment_provider_unavailable", "retry later") from exc
            # Stripe answers 2xx only when the capture happened.
            return await self._finish_status(held, payment_id, PaymentStatus.CAPTURED, None)

        return await self._run(req, phases)

    async def cancel(self, req: KeyRequest, payment_id: uuid.UUID) -> Outcome:
        async def phases(held: _Held) -> Outcome:
            row = await self._load_checked(payment_id, payments.check_cancel)
            try:
                await self.gateway.cancel(
                    row["stripe_payment_intent_id"],
                    idempotency_key=idempotency.stripe_key("cancel", str(payment_id)),
                )
            except (CardDeclined, StripeRejected) as exc:
                raise ApiError(409, "cancel_refused", str(exc)) from exc
            except StripeUnavailable as exc:
                raise ApiError(503, "payment_provider_unavailable", "retry later") from exc
            return await self._finish_status(held, payment_id, PaymentStatus.CANCELED, None)

        return await self._run(req, phases)

    # --- refunds -----------------------------------------------------------------

    async def refund(self, req: KeyRequest, payment_id: uuid.UUID, amount: int | None) -> Outcome:
        async def phases(held: _Held) -> Outcome:
            if held.recovery_point is RecoveryPoint.STARTED:
                refund_id = uuid.uuid4()
                async with db.transaction(self.pool, "reserve_refund") as conn:
                    row = await db.get_payment(conn, payment_id, for_update=True)
                    if row is None:
                        raise _not_found(payment_id)
                    reserved = await db.reserved_refunds(conn, payment_id)
                    try:
                        plan = payments.plan_refund(
                            PaymentStatus(row["status"]), row["amount_minor"], reserved, amount
                        )
                    except payments.TransitionError as exc:
                        raise ApiError(409, exc.code, str(exc), {"status": row["status"]}) from exc
                    except payments.RefundError as exc:
                        raise ApiError(422, exc.code, str(exc)) from exc
                    refund_money = Money(plan.amount_minor, currency(row["currency"]))
                    try:
                        stripe_amounts.to_stripe(refund_money)
                    except MoneyError as exc:
                        raise ApiError(422, exc.code, exc.message) from exc
                    await db.insert_refund(
                        conn,
                        refund_id=refund_id,
                        payment_id=payment_id,
                        amount_minor=plan.amount_minor,
                    )
                    await db.set_recovery_point(
                        conn, held.key_id, RecoveryPoint.RESOURCE_CREATED, refund_id
                    )
                held.recovery_point = RecoveryPoint.RESOURCE_CREATED
                held.resource_id = refund_id
            assert held.resource_id is not None
            refund_id = held.resource_id
            async with db.connection(self.pool, "load_refund") as conn:
                refund_row = await db.get_refund(conn, refund_id)
                payment_row = await db.get_payment(conn, payment_id)
            assert refund_row is not None and payment_row is not None
            refund_money = Money(refund_row["amount_minor"], currency(payment_row["currency"]))
            try:
                result = await self.gateway.refund(
                    payment_row["stripe_payment_intent_id"],
                    amount_minor=stripe_amounts.to_stripe(refund_money).amount,
                    idempotency_key=idempotency.stripe_key("refund", str(refund_id)),
                    metadata={"payment_id": str(payment_id), "refund_id": str(refund_id)},
                )
            except (CardDeclined, StripeRejected) as exc:
                async with db.transaction(self.pool, "refund_failed") as conn:
                    await db.update_refund(conn, refund_id, status="failed", stripe_refund_id=None)
                raise ApiError(409, "refund_refused", str(exc)) from exc
            except StripeUnavailable as exc:
                raise ApiError(503, "payment_provider_unavailable", "retry later") from exc
            async with db.transaction(self.pool, "record_refund") as conn:
                refund_row = await db.update_refund(
                    conn, refund_id, status=result.status, stripe_refund_id=result.id
                )
                total = await db.reserved_refunds(conn, payment_id)
            target = (
                PaymentStatus.REFUNDED
                if total >= payment_row["amount_minor"]
                else PaymentStatus.PARTIALLY_REFUNDED
            )
            return await self._finish_status(
                held,
                payment_id,
                target,
                None,
                http=201,
                amount_refunded=total,
                extra={"refund": refund_json(refund_row)},
            )

        return await self._run(req, phases)

    # --- reads -------------------------------------------------------------------

    async def get(self, payment_id: uuid.UUID) -> dict[str, Any]:
        async with db.connection(self.pool, "get_payment") as conn:
            row = await db.get_payment(conn, payment_id)
        if row is None:
            raise _not_found(payment_id)
        return payment_json(row)

    # --- webhooks ----------------------------------------------------------------

    async def handle_webhook(self, event: dict[str, Any]) -> str:
        """Apply one verified Stripe event; returns the verdict (for logs and metrics)."""
        event_id = str(event.get("id", ""))
        event_type = str(event.get("type", ""))
        obj = (event.get("data") or {}).get("object") or {}
        if not event_id:
            raise ApiError(400, "invalid_event", "event has no id")
        async with db.transaction(self.pool, "webhook") as conn:
            if not await db.record_webhook_event(conn, event_id, event_type):
                return "duplicate"
            verdict = await self._apply_event(conn, event_type, obj)
            await db.set_webhook_verdict(conn, event_id, verdict)
        return verdict

    async def _apply_event(self, conn: db.Conn, event_type: str, obj: dict[str, Any]) -> str:
        target = webhooks.target_of(event_type, obj)
        if target is None:
            return webhooks.Verdict.IGNORED.value
        row: dict[str, Any] | None = None
        metadata = obj.get("metadata") or {}
        our_id = metadata.get("payment_id") if isinstance(metadata, dict) else None
        if isinstance(our_id, str):
            try:
                row = await db.get_payment(conn, uuid.UUID(our_id), for_update=True)
            except ValueError:
                row = None
        if row is not None and not webhooks.belongs_to(
            target, row["stripe_payment_intent_id"], row["amount_minor"], str(row["currency"])
        ):
            log.warning(
                "webhook event names a payment it does not belong to",
                extra={"payment_id": str(row["id"]), "intent": target.intent_id},
            )
            return webhooks.Verdict.MISMATCH.value
        if row is None:
            row = await db.find_payment_by_intent(conn, target.intent_id)
        if row is None:
            return "unknown_payment"
        decision = webhooks.decide(PaymentStatus(row["status"]), row["amount_refunded"], target)
        if decision.verdict is not webhooks.Verdict.APPLY or decision.status is None:
            return decision.verdict.value
        row = await db.update_payment(
            conn,
            row["id"],
            status=decision.status,
            amount_refunded=decision.amount_refunded,
            intent_id=target.intent_id if row["stripe_payment_intent_id"] is None else None,
        )
        await self._emit(conn, row, {"source": "stripe_webhook", "stripe_event": event_type})
        return decision.verdict.value
