"""The /v1 REST API (FastAPI; OpenAPI at /docs).

Shaped after Electrum's prepaid-utility API: the client names each purchase with its own UUID
in the path; sending it again returns the stored answer (200) and never a second token; the
same id with another body is 409 DUPLICATE_REQUEST.  Every /v1 endpoint needs
`Authorization: Bearer <api key>`.  Each route parses, calls one use case of the service and
renders; errors are always `{code, message, field?}` (`sts.http.errors`).  Models:
`sts.server.schemas`; deliveries: `sts.server.deliveries`.
"""

# no `from __future__ import annotations`: FastAPI reads the local aliases at runtime

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from sts.server.dependencies import (
    AmountQuery,
    Auth,
    BearerKey,
    MeterPath,
    PurchaseId,
    RequestId,
    dump,
    errors_doc,
    ok_doc,
)
from sts.server.schemas import (
    AuditOut,
    EngineeringBody,
    EngineeringOut,
    LookupOut,
    PurchaseBody,
    PurchaseOut,
    ReprintBody,
    ReprintOut,
    ReversalBody,
    ReversalOut,
    TrialOut,
    VerifyBody,
    VerifyOut,
)
from sts.vending.service import VendingService


def v1_router(service: VendingService) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/meters/{meter}", summary="Meter lookup (confirm customer)",
             response_model=None, responses=ok_doc(LookupOut, "the meter, its customer, tariff "
                                                "and an optional quote") | errors_doc(403, 404, 429))
    def lookup(meter: MeterPath, who: Auth, amount: AmountQuery = None) -> dict[str, Any]:
        return service.lookup(meter, who, amount)

    @router.post("/v1/purchases/{purchase_id}", status_code=201, summary="Purchase (idempotent)",
              response_model=None, responses=ok_doc(PurchaseOut, "the sale", created=True)
              | errors_doc(403, 404, 409))
    def purchase(purchase_id: PurchaseId, body: PurchaseBody, key: BearerKey) -> Response:
        # the hot path: the key is checked inside the sale's own transaction, and the answer
        # is the stored JSON text (what a repeat returns), so it is not serialised twice
        out, created = service.purchase_json(purchase_id, dump(body), key)
        return Response(out, status_code=201 if created else 200,
                        media_type="application/json")

    @router.get("/v1/purchases/{purchase_id}", summary="The stored answer of a purchase",
             response_model=None, responses=ok_doc(PurchaseOut, "the stored answer and its status")
             | errors_doc(403, 404))
    def get_purchase(purchase_id: PurchaseId, who: Auth) -> dict[str, Any]:
        return service.get_purchase(purchase_id, who)

    @router.post("/v1/purchases/{purchase_id}/reversals", status_code=201,
              summary="Reverse a purchase whose tokens never reached the customer",
              response_model=None, responses=ok_doc(ReversalOut, "the reversal", created=True)
              | errors_doc(403, 404, 409))
    def reverse(purchase_id: PurchaseId, body: ReversalBody, who: Auth) -> JSONResponse:
        out, created = service.reverse(purchase_id, body.reason, who)
        return JSONResponse(out, status_code=201 if created else 200)

    @router.post("/v1/trials", summary="Trial purchase: the full answer, no token, nothing stored",
              response_model=None, responses=ok_doc(TrialOut, "the answer a sale would give")
              | errors_doc(403, 404, 409))
    def trial(body: PurchaseBody, who: Auth) -> dict[str, Any]:
        return service.trial(dump(body), who)

    @router.post("/v1/reprints", summary="Reprint the last purchase of a meter, or a receipt",
              response_model=None, responses=ok_doc(ReprintOut, "the original answer again")
              | errors_doc(403, 404))
    def reprint(body: ReprintBody, who: Auth) -> dict[str, Any]:
        return service.reprint(dump(body), who)

    @router.post("/v1/engineering/{request_id}", status_code=201, summary="Engineering tokens",
              response_model=None, responses=ok_doc(EngineeringOut, "the tokens", created=True)
              | errors_doc(403, 404, 409))
    def engineering(request_id: RequestId, body: EngineeringBody, who: Auth) -> JSONResponse:
        out, created = service.engineering(request_id, dump(body), who)
        return JSONResponse(out, status_code=201 if created else 200)

    @router.post("/v1/tokens/verify", summary="Decode a token and say whether it was issued",
              response_model=None, responses=ok_doc(VerifyOut, "the decoded token and its issue")
              | errors_doc(403, 404))
    def verify(body: VerifyBody, who: Auth) -> dict[str, Any]:
        return service.verify_token(body.meter, body.token, who)

    @router.get("/v1/audit/verify", summary="Check the audit and transaction hash chains",
             response_model=None, responses=ok_doc(AuditOut, "the verdict") | errors_doc(403))
    def audit_verify(who: Auth) -> dict[str, Any]:
        return service.verify_audit(who)

    return router
