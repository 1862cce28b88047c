from django.db import models


class Order(models.Model):
    email = models.EmailField()
    status = models.CharField(max_length=20, default="placed")
    confirmed_by_job = models.CharField(max_length=40, blank=True)

    class Meta:
        app_label = "shop"
