"""Marks the core's English texts that people read on the pages (refusals, setting labels). The core stays
free of Django: `gettext_noop` only lets `make messages` find a text; the web side translates it (gettext)
where it shows it, and machine interfaces keep the English."""


def gettext_noop(text: str) -> str:
    return text
