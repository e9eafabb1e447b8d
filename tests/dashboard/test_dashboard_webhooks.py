"""The dashboard's Webhooks page: your webhooks (secret by its prefix only) and their recent
deliveries, as the workers' dispatcher left them; nobody else's; a login first."""

from __future__ import annotations

from common.settings import Settings
from store import webhooks
from store.db import unit_of_work
from store.users import create_user
from tests.harness.webhook_receiver import Receiver
from worker.webhooks import dispatch_due


def test_the_webhooks_page_lists_yours_and_their_deliveries(ui, admin_id, session_factory):
    receiver = Receiver(statuses=[500])
    try:
        with unit_of_work(session_factory) as s:
            mine = webhooks.create_webhook(s, admin_id, receiver.url)
            webhooks.queue_ping(s, mine)
            other = webhooks.create_webhook(s, create_user(s, "bob").id, "https://bob.example/h")
            secret, other_url = mine.secret, other.url
        dispatch_due(session_factory, Settings(webhook_max_attempts=1))
        page = ui.get("/ui/webhooks")
    finally:
        receiver.close()
    assert page.status_code == 200, page.text
    assert receiver.url in page.text and other_url not in page.text
    assert secret[:10] in page.text and secret not in page.text
    assert ">failed<" in page.text and "HTTP 500: receiver says no" in page.text
    assert 'href="/ui/webhooks" class="on"' in page.text

    del ui.cookies["ewc_session"]
    r = ui.get("/ui/webhooks", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
