"""What load-test users ask to hear: mostly short prompts, some paragraphs, an
occasional article, in several languages (those the engine offers)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Kind = Literal["prompt", "paragraph", "article"]
# How often each kind is asked for: chat-style prompts dominate real traffic.
WEIGHTS: dict[Kind, float] = {"prompt": 0.65, "paragraph": 0.30, "article": 0.05}


@dataclass(frozen=True)
class Sample:
    kind: Kind
    language: str
    text: str


PROMPTS = {
    "en": [
        "Your order has shipped.",
        "Turn left in two hundred meters.",
        "The meeting starts in five minutes.",
        "Welcome back! You have three new messages.",
        "Your table for two is ready.",
        "Please hold, an agent will be with you shortly.",
        "Battery low. Connect the charger.",
        "Good morning. Today will be sunny, with a high of twenty-one degrees.",
    ],
    "de": [
        "Ihr Paket wurde zugestellt.",
        "Der nächste Halt ist der Hauptbahnhof.",
        "Bitte halten Sie Ihre Fahrkarte bereit.",
        "Willkommen zurück!",
    ],
    "fr": [
        "Votre commande est prête.",
        "Le train pour Lyon partira voie quatre.",
        "Merci de patienter quelques instants.",
    ],
    "es": [
        "Su pedido ha sido enviado.",
        "La reunión empieza en cinco minutos.",
        "Bienvenido de nuevo.",
    ],
}
PARAGRAPHS = {
    "en": [
        "Thanks for calling. Your appointment is confirmed for Thursday at ten in the "
        "morning. If you need to change it, reply to the message we sent you, or call us "
        "back at any time before Wednesday evening. We look forward to seeing you.",
        "Here is your daily summary. Sales were up four percent on last week, mostly from "
        "the new spring range. Two orders are waiting for approval, and the warehouse "
        "reports that the delayed shipment will arrive tomorrow afternoon.",
    ],
    "de": [
        "Guten Tag und herzlich willkommen. Unsere Öffnungszeiten sind montags bis "
        "freitags von acht bis achtzehn Uhr. Außerhalb dieser Zeiten hinterlassen Sie "
        "bitte eine Nachricht, wir rufen Sie am nächsten Werktag zurück.",
    ],
    "fr": [
        "Bonjour et bienvenue. Nos bureaux sont ouverts du lundi au vendredi, de neuf "
        "heures à dix-sept heures. Pour toute question sur votre commande, munissez-vous "
        "de votre numéro de client avant de nous appeler.",
    ],
    "es": [
        "Hola y bienvenido. Nuestro horario de atención es de lunes a viernes, de nueve "
        "a seis. Si necesita ayuda con su pedido, tenga a mano su número de cliente.",
    ],
}
ARTICLES = {
    "en": [
        "Queues are the quiet workhorses of modern software. When a request arrives faster "
        "than it can be served, a queue lets the system accept it now and finish it later, "
        "instead of refusing it or making the caller wait. The price is a new question: how "
        "many workers should be serving the queue at any moment? Too few, and jobs wait for "
        "minutes. Too many, and expensive machines sit idle. Autoscalers answer the question "
        "by watching the work that is waiting and the work that is running, and by adding "
        "workers when the sum grows beyond what the pool can carry. They remove workers more "
        "slowly, because a worker that has just loaded a large model is costly to bring back. "
        "Watching a pool grow under a burst, and shrink after it, is the surest way to learn "
        "whether those rules fit the traffic a service really sees.",
    ],
    "de": [
        "Warteschlangen sind die stillen Arbeitspferde moderner Software. Wenn Anfragen "
        "schneller eintreffen, als sie bearbeitet werden können, nimmt die Warteschlange sie "
        "sofort an und erledigt sie später. Dann stellt sich die Frage, wie viele Arbeiter "
        "gerade gebraucht werden. Zu wenige, und die Aufträge warten lange. Zu viele, und "
        "teure Maschinen stehen still. Ein automatischer Regler beobachtet deshalb die "
        "wartende und die laufende Arbeit und passt die Zahl der Arbeiter laufend an.",
    ],
}
CORPUS: dict[Kind, dict[str, list[str]]] = {
    "prompt": PROMPTS,
    "paragraph": PARAGRAPHS,
    "article": ARTICLES,
}


def samples(languages: set[str] | None) -> list[Sample]:
    """Every sample in `languages` (None: the engine reads the language from the text)."""
    return [
        Sample(kind, language, text)
        for kind, by_language in CORPUS.items()
        for language, texts in by_language.items()
        if languages is None or language in languages
        for text in texts
    ]


def pick(rng: random.Random, pool: list[Sample]) -> Sample:
    """A kind by its weight, then a language and a text of that kind."""
    kinds = [k for k in WEIGHTS if any(s.kind == k for s in pool)]
    kind = rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
    return rng.choice([s for s in pool if s.kind == kind])
