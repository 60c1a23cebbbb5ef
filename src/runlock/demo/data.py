"""A small, realistic customer-support ticket dataset, generated deterministically.

Every value comes from templates and a ``random.Random(seed)`` that this module owns, so the same
``(n, seed)`` always gives the same tickets and the same JSONL bytes. A few exact and near
duplicates are planted on purpose: real support queues have them (a customer pressing "send"
twice, a copy-pasted complaint), and a leakage checker should find them across splits.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from runlock.errors import InvalidInput
from runlock.hashing import digest_file

CATEGORIES = ("billing", "shipping", "account", "technical", "returns")

_PRODUCTS = (
    "wireless earbuds", "standing desk", "coffee grinder", "phone case", "USB-C hub",
    "mechanical keyboard", "air purifier", "running shoes", "yoga mat", "smart watch",
    "desk lamp", "water bottle", "backpack", "bluetooth speaker", "monitor arm",
)
_PLANS = ("Basic", "Plus", "Pro", "Family", "Business")
_CARRIERS = ("UPS", "FedEx", "DHL", "USPS", "the local courier")
_DEVICES = ("iPhone", "Android phone", "Windows laptop", "MacBook", "iPad", "Chromebook")
_ERRORS = ("error 500", "a blank screen", "'session expired'", "error code E-41",
           "'something went wrong'", "an endless spinner")
_OPENERS = ("Hi,", "Hello,", "Hi there,", "Good morning,", "Hey,", "Hello support team,", "")
_CLOSERS = ("Thanks.", "Thank you!", "Please help.", "Any update would be appreciated.",
            "Thanks in advance.", "This is urgent.", "")

# (customer text, agent reply) per category; slots in braces are filled by ``_fill``.
_TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "billing": (
        ("I was charged twice for order #{order}. Please refund the extra ${amount}.",
         "Sorry about the double charge. I refunded ${amount}; it shows in 3-5 business days."),
        ("My {plan} plan renewed at ${amount} but the price on the site says less. Why?",
         "The site shows the promotional price. I applied it to your renewal and refunded the rest."),
        ("I cancelled my {plan} subscription last week and was still billed ${amount}.",
         "I reversed the ${amount} charge and confirmed that your {plan} plan is cancelled."),
        ("The invoice for order #{order} shows the wrong billing address.",
         "I corrected the address on invoice #{order}; a new copy is in your inbox."),
        ("My card was declined when paying for the {product}, but the bank says it is fine.",
         "Our payment provider had a short outage. Please try again; your cart is saved."),
        ("Can I get a receipt with VAT for order #{order}? I need it for my expenses.",
         "Of course. The VAT receipt for order #{order} is attached to this reply."),
    ),
    "shipping": (
        ("Order #{order} was supposed to arrive {days} days ago and tracking has not moved.",
         "Sorry for the delay. I opened a trace with the carrier and will update you in 48 hours."),
        ("{carrier} says my {product} was delivered but nothing is at my door.",
         "I opened a claim with {carrier} and sent a replacement {product} by express delivery."),
        ("Can I change the delivery address for order #{order}? I am moving this week.",
         "Done: order #{order} now ships to the new address. You will get a new tracking email."),
        ("The tracking link for order #{order} returns an error on the {carrier} site.",
         "The {carrier} site is slow to update. Your parcel is in transit and due in 2 days."),
        ("My {product} arrived with a crushed box and the contents are damaged.",
         "I am sorry it arrived damaged. A replacement {product} ships today at no cost."),
        ("Do you ship to Canada? I want to order a {product} for my sister.",
         "Yes, we ship to Canada. Delivery takes 5-8 business days and duties are included."),
    ),
    "account": (
        ("I cannot log in to my account; the password reset email never arrives.",
         "I sent a new reset link; please check your spam folder if it does not arrive."),
        ("Please change the email on my account, I no longer use the old one.",
         "I updated the email on your account and sent a confirmation to the new address."),
        ("How do I delete my account and all my data?",
         "I started the deletion request; your account and data are removed within 30 days."),
        ("Someone logged in to my account from another country. Please lock it.",
         "I locked the account and signed out every session. Please set a new password."),
        ("I want to switch from the {plan} plan to the {plan2} plan.",
         "You are now on the {plan2} plan; the price difference is prorated on your next bill."),
        ("Two-factor codes from the app are rejected on my {device}.",
         "Please check that the clock on your {device} is set automatically, then try again."),
    ),
    "technical": (
        ("The app crashes with {error} when I open my orders on my {device}.",
         "Thanks for the details. Please update the app on your {device}; version 9.2 fixes it."),
        ("My {product} will not pair with my {device} after the last update.",
         "Please forget the {product} in the Bluetooth settings of your {device} and pair again."),
        ("The website shows {error} at checkout, so I cannot pay.",
         "Our engineers fixed a checkout bug an hour ago. Please clear your cache and retry."),
        ("The firmware update for the {product} stopped at {percent}% and now it will not start.",
         "Hold the power button for 15 seconds to start recovery mode, then run the update again."),
        ("Notifications stopped working on my {device} since version {version}.",
         "This is a known issue in version {version}; a fix is rolling out this week."),
        ("The {product} disconnects from Wi-Fi every few minutes.",
         "Please move the {product} to the 2.4 GHz network; the steps are in the help center."),
    ),
    "returns": (
        ("I want to return the {product} from order #{order}; it is not what I expected.",
         "No problem. I created a prepaid return label for order #{order}; it is attached."),
        ("How long does a refund take? I sent back the {product} {days} days ago.",
         "Your return was scanned today; the refund reaches your card within 5-7 business days."),
        ("The return label for order #{order} does not print.",
         "I attached the label for order #{order} as a PDF; you can also show the QR code in store."),
        ("I received the wrong size of {product}. Can I exchange it?",
         "I arranged an exchange; the new {product} ships as soon as we scan the return."),
        ("My return for order #{order} was rejected but the item was unused.",
         "I reviewed the photos and approved the return for order #{order}. Sorry for the trouble."),
        ("Is the {product} still returnable after {days} days?",
         "Our return window is 60 days, so yes: you can still return the {product}."),
    ),
}

_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
_SPAN_SECONDS = 180 * 24 * 3600


@dataclass(frozen=True)
class Ticket:
    id: str
    customer_id: str
    created_at: str
    category: str
    text: str
    reply: str


@dataclass(frozen=True)
class TicketFile:
    """A JSONL file of tickets that :func:`write_tickets` wrote."""

    path: Path
    count: int
    digest: str
    exact_duplicates: int
    near_duplicates: int


@dataclass(frozen=True)
class _Draft:
    customer: str
    seconds: int
    category: str
    text: str
    reply: str


def _fill(template: tuple[str, str], rng: random.Random) -> tuple[str, str]:
    plan, plan2 = rng.sample(_PLANS, 2)
    slots = dict(
        order=rng.randint(100000, 999999), amount=f"{rng.randint(5, 400)}.{rng.randint(0, 99):02d}",
        plan=plan, plan2=plan2, product=rng.choice(_PRODUCTS), carrier=rng.choice(_CARRIERS),
        device=rng.choice(_DEVICES), error=rng.choice(_ERRORS), days=rng.randint(2, 40),
        percent=rng.randint(5, 95), version=f"{rng.randint(3, 9)}.{rng.randint(0, 20)}",
    )
    return template[0].format(**slots), template[1].format(**slots)


def _draft(rng: random.Random, customers: int) -> _Draft:
    category = rng.choice(CATEGORIES)
    body, reply = _fill(rng.choice(_TEMPLATES[category]), rng)
    text = " ".join(part for part in (rng.choice(_OPENERS), body, rng.choice(_CLOSERS)) if part)
    return _Draft(customer=f"c-{rng.randint(1, customers):04d}",
                  seconds=rng.randrange(_SPAN_SECONDS), category=category, text=text,
                  reply=reply)


def _near_copy(draft: _Draft, rng: random.Random) -> _Draft:
    """The same complaint re-sent a little later with a cosmetic edit."""
    edits = (
        lambda t: t.lower(),
        lambda t: t.rstrip(".!?") + "!!",
        lambda t: "Following up: " + t,
        lambda t: t.replace(",", "", 1) + " ",
    )
    text = rng.choice(edits)(draft.text)
    later = min(draft.seconds + rng.randint(600, 3 * 24 * 3600), _SPAN_SECONDS - 1)
    return _Draft(draft.customer, later, draft.category, text, draft.reply)


def generate_tickets(n: int = 1000, *, seed: int = 0, duplicate_rate: float = 0.02) -> list[Ticket]:
    """``n`` tickets ordered by creation time, ids ``t-00001``…; about ``duplicate_rate`` of them
    are exact copies of an earlier ticket's text and as many again are near copies."""
    if n < 10:
        raise InvalidInput(f"A ticket dataset needs at least 10 tickets, not {n}.")
    if not 0 <= duplicate_rate < 0.5:
        raise InvalidInput(f"duplicate_rate must be in [0, 0.5), not {duplicate_rate}.")
    rng = random.Random(seed)
    dupes = int(n * duplicate_rate)
    drafts = [_draft(rng, customers=max(10, n // 3)) for _ in range(n - 2 * dupes)]
    originals = rng.sample(drafts, 2 * dupes)
    drafts += [
        _Draft(d.customer, min(d.seconds + rng.randint(5, 300), _SPAN_SECONDS - 1), d.category,
               d.text, d.reply)
        for d in originals[:dupes]
    ]
    drafts += [_near_copy(d, rng) for d in originals[dupes:]]
    drafts.sort(key=lambda d: (d.seconds, d.customer, d.text))
    return [
        Ticket(id=f"t-{i:05d}", customer_id=d.customer,
               created_at=(_START + timedelta(seconds=d.seconds)).strftime("%Y-%m-%dT%H:%M:%SZ"),
               category=d.category, text=d.text, reply=d.reply)
        for i, d in enumerate(drafts, start=1)
    ]


def _count_duplicates(tickets: list[Ticket]) -> tuple[int, int]:
    exact_seen: set[str] = set()
    norm_seen: set[str] = set()
    exact = near = 0
    for t in tickets:
        norm = " ".join(t.text.lower().replace("following up:", "").replace("!", "")
                        .replace(",", "").replace(".", "").split())
        if t.text in exact_seen:
            exact += 1
        elif norm in norm_seen:
            near += 1
        exact_seen.add(t.text)
        norm_seen.add(norm)
    return exact, near


def write_tickets(path: str | Path, tickets: list[Ticket]) -> TicketFile:
    """Write ``tickets`` as JSONL (sorted keys, ``\\n`` line ends, UTF-8): same tickets, same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(asdict(t), sort_keys=True, ensure_ascii=False) for t in tickets]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    digest, _ = digest_file(path)
    exact, near = _count_duplicates(tickets)
    return TicketFile(path=path, count=len(tickets), digest=digest, exact_duplicates=exact,
                      near_duplicates=near)


def read_tickets(path: str | Path) -> list[Ticket]:
    """Read a JSONL file written by :func:`write_tickets`."""
    with open(path, encoding="utf-8") as f:
        return [Ticket(**json.loads(line)) for line in f if line.strip()]
