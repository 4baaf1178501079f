"""chat.services.companion_messages_create: the dispatcher's batch of companion messages."""

import pytest
from django.db import transaction

from chat import services
from chat.models import Message
from chat.services import CompanionDelivery, DuplicateScheduledReply
from chat.text_rules import MessageTextInvalid


@pytest.mark.django_db
def test_a_batch_is_stored_whole_or_not_at_all(conversation) -> None:
    # given: two replies delivered in one batch
    stored = services.companion_messages_create(
        deliveries=[
            CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=101, text="back~"),
            CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=102, text="good night"),
        ]
    )
    assert [(m.role, m.text, m.scheduled_reply_id) for m in stored] == [
        ("companion", "back~", 101),
        ("companion", "good night", 102),
    ]
    # when: a later batch repeats reply 102 (a duplicate wake-up), inside the caller's transaction
    with transaction.atomic():
        with pytest.raises(DuplicateScheduledReply):
            services.companion_messages_create(
                deliveries=[
                    CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=103, text="new"),
                    CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=102, text="again"),
                ]
            )
        # then: the caller's transaction is still usable and nothing of that batch was stored
        assert Message.objects.filter(conversation=conversation).count() == 2
    # and a text chat refuses stores nothing either
    with pytest.raises(MessageTextInvalid):
        services.companion_messages_create(
            deliveries=[CompanionDelivery(conversation_id=conversation.pk, scheduled_reply_id=104, text=" ")]
        )
    assert list(Message.objects.order_by("id").values_list("scheduled_reply_id", flat=True)) == [101, 102]
    assert services.companion_messages_create(deliveries=[]) == []
