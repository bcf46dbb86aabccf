"""Read /metrics the way Prometheus does: parsed with prometheus_client's own parser."""

from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    def __init__(self, text: str):
        self.text = text
        self.samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def get(self, name: str, **labels) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def value(self, name: str, **labels) -> float:
        """The sample's value; 0 for a series not exported yet (as Prometheus' increase() would see it)."""
        return self.get(name, **labels) or 0.0

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def scrape(client, **headers) -> Scrape:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return Scrape(response.content.decode())


def grew(before: Scrape, after: Scrape, name: str, **labels) -> float:
    """How much a counter or histogram series grew between two scrapes (the test run shares one metrics folder)."""
    return after.value(name, **labels) - before.value(name, **labels)
