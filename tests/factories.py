"""Typed factory_boy factories for the chat models."""

from __future__ import annotations

import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from factory.django import DjangoModelFactory

from chat.models import Companion, Conversation, Message


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    password = factory.django.Password("correct horse battery")


class CompanionFactory(DjangoModelFactory[Companion]):
    class Meta:
        model = Companion
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"companion-{n}")
    name = factory.Sequence(lambda n: f"Companion {n}")
    description = "A cheerful college student who loves food and music."
    speaking_style = "casual, warm, short messages"
    default_time_zone = "Asia/Seoul"
    # Tests run at any hour of the real clock: quiet hours are off unless a test sets them (the
    # model's default, 23:00-08:00, is tested with injected clocks in test_follow_ups.py).
    quiet_hours_start = datetime.time(0, 0)
    quiet_hours_end = datetime.time(0, 0)


class ConversationFactory(DjangoModelFactory[Conversation]):
    class Meta:
        model = Conversation

    person = factory.SubFactory(UserFactory)
    companion = factory.SubFactory(CompanionFactory)
    time_zone = "Asia/Seoul"


class MessageFactory(DjangoModelFactory[Message]):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    role = Message.Role.PERSON
    text = factory.Sequence(lambda n: f"message {n}")
