"""Place an order and enqueue its confirmation in one transaction; read the job back."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from shop.models import Order
from shop.tasks import send_confirmation


@csrf_exempt
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    email = json.loads(request.body)["email"]
    with transaction.atomic():  # the order and its job commit together, or neither
        order = Order.objects.create(email=email)
        result = send_confirmation.enqueue(order.pk)
        order.confirmed_by_job = result.id
        order.save(update_fields=["confirmed_by_job"])
    return JsonResponse({"order": order.pk, "job": result.id}, status=201)


@require_GET
def order_status(request: HttpRequest, order_id: int) -> JsonResponse:
    order = Order.objects.get(pk=order_id)
    result = send_confirmation.get_result(order.confirmed_by_job)
    body = {"order": order.pk, "status": order.status, "job_status": str(result.status)}
    if result.is_finished and not result.errors:
        body["sent"] = result.return_value
    return JsonResponse(body)
