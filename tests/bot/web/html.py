"""Reading the served pages (or Chromium's DOM dump) with the stdlib HTML parser."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@dataclass(frozen=True)
class Page:
    elements: list[Element]
    text: str

    def find(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Elements of `tag` whose attributes equal `attrs` (`class_` is one of the classes)."""
        wanted_class = attrs.pop("class_", None)
        return [
            e
            for e in self.elements
            if (tag is None or e.tag == tag)
            and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
            and (wanted_class is None or wanted_class in e.classes)
        ]

    def by_id(self, element_id: str) -> Element:
        [found] = self.find(id=element_id)
        return found


def parse(html: str) -> Page:
    collector = _Collector()
    collector.feed(html)
    return Page(collector.elements, " ".join(" ".join(collector.text).split()))
