"""Verification checks: the specifics in the model's text that the article never states.

A rebuttal (`argument`, `what_to_check`) or a missing-context item (`point`, `why_it_matters`) may
assert a figure, a date, a name, a link or a source the article never gave: exactly what a model
invents. Each such item gets `checks`, a list of `{"kind", "text"}` where `text` is the exact
words in the item (so a renderer can mark them) and is absent from the article. No model call;
the rules are regular expressions and word lists, applied in this order (a span claimed by an
earlier rule is not flagged again by a later one):

1. **url**: `http(s)://…`, `www.…`, or a bare domain ending in a common top-level domain
   (`example.org/path`); trailing punctuation is not part of it.
2. **date**: a day and month or a month and year ("12 March 2015", "March 12, 2015", "March 2015",
   "Sept. 3"), ISO and numeric dates ("2015-03-12", "3/12/2015"), decades ("the 1990s", "'90s") and
   years (a bare 1500-2099 with no currency, scale, percent or thousands comma). A bare month ("in
   March") is not flagged. A date is stated when the article has a date agreeing on every field the
   model's gives (day, month, year); a year when the article has that number anywhere.
3. **citation**: a named source: a capitalised name (rule 5) followed by, or ending in, a source or
   document word ("Brookings study", "IPCC report", "Gallup poll", "Paris agreement", "Clean Air
   Act"), and the name after "according to" ("according to the Pew Research Center"). A year before
   it ("a 2019 Brookings study") is flagged by rule 2 on its own.
4. **figure**: a number written in digits (not part of a word or id such as "COVID-19", "G7", "C2")
   with an optional currency sign and scale ("$3.5bn", "3m", "3 million", "40%", "12 per cent",
   "4th"), or a number word with a scale ("three million"). It is stated when the article has the
   same value in any common spelling: "3 million", "3,000,000", "3m" and "three million" are one
   value (units and percent signs are not compared).
5. **name**: a run of capitalised words (joined by "of", "for", "de", "van", "von"… and "&"; titles
   such as "Dr." join the name), outside the first word of a sentence. A sentence's first word
   is dropped when it is a common word ("The", "In", "However", an -ly adverb…); a lone sentence-first
   word is kept only when it is an acronym or the same text shows it capitalised mid-sentence.
   Months, weekdays, "I", and lone nationality or party words ("American", "Republicans") are
   not names. A name is stated when the article has it; a person's name (two or three plain
   capitalised words) also when the article has its last word (the surname).

"In the article" means: a whole-word occurrence after the folding `article.locate` uses (typographic
quotes and dashes, spaces, accents) and case-folding; names also compare without dots ("U.S." = "US").

What it does not catch: spelled-out small numbers ("three studies"), vague sources ("studies show",
"experts say"), names written in lower case, facts that carry no figure, date, name or link, an
abbreviation standing for a name the article spells out ("the Fed" for "the Federal Reserve" is
flagged; "US" for "United States" too), and a specific the article states in another sense
(the article's "3 million people" makes the model's "$3 million" stated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..article import fold

KINDS = ("figure", "date", "name", "url", "citation")

# Fields of the brief whose text is checked, per kind of item.
REBUTTAL_FIELDS = ("argument", "what_to_check")
MISSING_CONTEXT_FIELDS = ("point", "why_it_matters")

_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'()\[\]]+"
    r"|(?<![\w@.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|gov|edu|int|io|co|uk|eu|info)\b(?:/[^\s<>\"'()]*)?"
)

_MONTH_NUMBERS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[5-9]\d\d|20\d\d)"
_DATE = re.compile(
    rf"(?<![\w.,/:])(?:"
    rf"(?P<d1>{_DAY})\s+(?P<m1>{_MONTH})(?:,?\s+(?P<y1>{_YEAR}))?"
    rf"|(?P<m2>{_MONTH})\s+(?:(?P<d2>{_DAY})(?:,?\s+(?P<y2>{_YEAR}))?|(?P<y3>{_YEAR}))"
    rf"|(?P<iy>{_YEAR})-(?P<im>[01]\d)-(?P<id>[0-3]\d)"
    rf"|(?P<na>\d{{1,2}})/(?P<nb>\d{{1,2}})/(?P<ny>\d{{4}}|\d\d)"
    rf"|(?P<decade>(?:1[5-9]|20)?\d0s|['’]\d0s)"
    rf"|(?P<year>{_YEAR})(?![,.]?\d|\s*(?:%|per\s?cent|percent)|\s?(?:thousand|million|billion|trillion|bn|mn|tn)\b)"
    rf")(?![\w/])"
)

_SCALES = {
    "thousand": 10**3, "k": 10**3, "million": 10**6, "m": 10**6, "mn": 10**6, "mln": 10**6,
    "billion": 10**9, "bn": 10**9, "b": 10**9, "trillion": 10**12, "tn": 10**12, "trn": 10**12,
}  # fmt: skip
_NUMBER_WORDS: dict[str, int | Decimal] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100,
    "dozen": 12, "half": Decimal("0.5"), "a": 1,
}  # fmt: skip
_FIGURE = re.compile(
    r"(?<![\w.,/:$£€¥₹])(?<![A-Za-z]-)"
    r"(?P<cur>(?:US|A|C|NZ|HK)?[$£€¥₹]\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|bn|mn|mln|tn|trn)\b|(?P<short>[kmb])(?![\w]))?"
    r"(?P<pct>%|\s?(?:per\s?cent|percent)\b)?"
    r"(?P<ord>st|nd|rd|th)?"
    r"(?![\w]|[.,]\d)"
)
_WORD_FIGURE = re.compile(
    r"(?<![\w-])(?P<word>(?:[Oo]ne|[Tt]wo|[Tt]hree|[Ff]our|[Ff]ive|[Ss]ix|[Ss]even|[Ee]ight|[Nn]ine|[Tt]en"
    r"|[Ee]leven|[Tt]welve|[Tt]wenty|[Tt]hirty|[Ff]orty|[Ff]ifty|[Ss]ixty|[Ss]eventy|[Ee]ighty|[Nn]inety"
    r"|[Hh]undred|[Hh]alf\s+a|[Aa]))\s+(?P<scale>thousand|million|billion|trillion)\b"
)
_NUMBER_WORD = re.compile(r"(?<![\w-])(" + "|".join(word for word in _NUMBER_WORDS if word != "a") + r")(?![\w-])")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Word tokens: dotted acronyms ("U.S."), or words that may hold digits, apostrophes and hyphens.
# A hyphen before a lower-case letter ends a word: "ISIS-held" is the name "ISIS".
_TOKEN = re.compile(r"(?:[A-Z]\.){2,}|[^\W\d_][\w'’]*(?:-(?![a-z])[\w'’]+)*|&")
_TITLES = _words("""dr mr mrs ms prof sen rep gov gen st jr sr rev lt col capt""")
_CONNECTORS = _words("""of for de da di del der den van von la le du bin al & the""")
_SOURCE_WORDS = _words(
    """study studies report reports survey surveys poll polls analysis paper review audit census index
    dataset data estimate estimates figures statistics research assessment investigation inquiry
    findings evaluation trial experiment memo testimony ruling agreement accord accords treaty
    act law convention protocol directive bill declaration charter amendment resolution
    framework guidelines"""
)
# Sentence-first words that are not names (closed-class words and frequent openers).
_COMMON = _words(
    """a an the this that these those there here it its it's we our they their them he his she her you your
    i my me us in on at to of for from by with without within into onto over under after before since
    until during despite although though while whereas when whenever where wherever if unless because as
    but and or nor so yet also even still only just both each every either neither no not none some many
    most much more less few fewer several all any other others another such same what which who whom
    whose why how then thus hence therefore however moreover furthermore meanwhile instead indeed rather
    similarly likewise nevertheless nonetheless otherwise besides overall finally first second third
    next last yes perhaps maybe according critics supporters proponents opponents advocates experts
    researchers economists analysts officials data evidence studies research historically today recently
    currently now later earlier once again among across between beyond against toward towards about
    around above below unlike like given consider compare check look see note ask verify confirm find
    search review examine is are was were be been has have had do does did can could will would should
    may might must shall let one two three four five six seven eight nine ten higher lower greater
    larger smaller bigger better worse longer shorter newer older fewer official government recent new
    independent public federal national local internal academic published existing available reliable
    credible historical economic"""
)
# Capitalised words that end a name: "I", months and weekdays (dates are rule 2's).
_BREAKS = _words(
    """i january february march april may june july august september october november december monday
    tuesday wednesday thursday friday saturday sunday"""
)
# Nationality, religion and party words: not a specific to verify on their own ("American voters"),
# but part of a name with other words ("European Central Bank").
_NOT_NAMES = _words(
    """american americans british european europeans chinese russian russians french german germans
    japanese indian african asian western eastern northern southern english spanish italian canadian
    australian mexican israeli palestinian ukrainian muslim muslims christian christians jewish democrat
    democrats democratic republican republicans conservative conservatives liberal liberals labour tory
    tories god internet iranian iranians iraqi iraqis syrian syrians saudi arab arabs kurdish kurds
    sunni sunnis shia shiite turkish korean koreans brazilian polish dutch swedish irish scottish welsh
    egyptian lebanese afghan pakistani soviet western westerners asian asians latino latinos hispanic
    black white catholic catholics protestant evangelical evangelicals"""
)
# The brief's own ids ("claim C3", "C3-R1"), which a model cites: not names to verify.
_BRIEF_ID = re.compile(r"C\d+(?:-R\d+)?")
_ADVERBISH = re.compile(r"(?:ly|ing|ed|est|ous|ive|ful|less)$")
_SENTENCE_END = ".!?:;…"
_OPENERS = " \t\"'“‘«([*•-–—"
_QUOTES = '"“‘«'


@dataclass
class _Span:
    start: int
    end: int
    kind: str
    text: str
    stated: bool = False


@dataclass
class ArticleIndex:
    """What the checks compare against, computed once per article."""

    text: str
    folded: str = field(init=False)
    dotless: str = field(init=False)
    values: set[Decimal] = field(init=False)
    dates: list[tuple[int | None, int | None, int | None]] = field(init=False)

    def __post_init__(self) -> None:
        self.folded = fold(self.text).casefold()
        self.dotless = self.folded.replace(".", "")
        self.values = {value for _, _, value in _figures(self.text)}
        self.values |= {Decimal(_NUMBER_WORDS[m.group(1).lower()]) for m in _NUMBER_WORD.finditer(self.text.lower())}
        self.dates = [_date_fields(m) for m in _DATE.finditer(self.text)]

    def mentions(self, phrase: str) -> bool:
        """Whether the article has `phrase` as whole words (folded and case-folded)."""
        needle = fold(phrase).casefold().strip()
        if not needle:
            return True
        if _whole(needle, self.folded):
            return True
        # "U.S." and "US" are one name; figures keep their dots ("3.5" is not "35").
        return not re.search(r"\d", needle) and _whole(needle.replace(".", ""), self.dotless)


def _whole(needle: str, haystack: str) -> bool:
    return re.search(r"(?<!\w)" + re.escape(needle) + r"(?!\w)", haystack) is not None


def mentions(article_text: str, phrase: str) -> bool:
    """Whether `article_text` states `phrase` (whole words, folded, any case): what `validate` checks."""
    return ArticleIndex(article_text).mentions(phrase)


# -- numbers and dates --------------------------------------------------------------------------


def _figures(text: str) -> list[tuple[int, int, Decimal]]:
    """(start, end, value) of every number in digits, and of number words with a scale."""
    found = []
    for match in _FIGURE.finditer(text):
        value = Decimal(match["num"].replace(",", ""))  # Decimal reads any script's digits, as \d matches them
        scale = (match["scale"] or match["short"] or "").lower()
        found.append((match.start(), match.end(), value * _SCALES.get(scale, 1)))
    for match in _WORD_FIGURE.finditer(text):
        word = match["word"].lower().split()[0]
        found.append((match.start(), match.end(), Decimal(_NUMBER_WORDS[word]) * _SCALES[match["scale"].lower()]))
    return [(start, end, value.normalize()) for start, end, value in found]


def _date_fields(match: re.Match[str]) -> tuple[int | None, int | None, int | None]:
    """(year, month, day) of a date match; None for a field it does not give."""
    if match["iy"]:
        return int(match["iy"]), int(match["im"]), int(match["id"])
    if match["ny"]:
        year = int(match["ny"])
        return (year + 2000 if year < 100 else year), int(match["na"]), int(match["nb"])
    month_name = match["m1"] or match["m2"]
    if month_name:
        month = _MONTH_NUMBERS[_month_key(month_name)]
        day = match["d1"] or match["d2"]
        given = match["y1"] or match["y2"] or match["y3"]
        return (int(given) if given else None), month, (int(re.sub(r"\D", "", day)) if day else None)
    return None, None, None


def _month_key(name: str) -> str:
    key = name.lower().rstrip(".")
    return "sept" if key.startswith("sept") else key[:3]


def _date_stated(match: re.Match[str], index: ArticleIndex) -> bool:
    if match["year"]:
        return Decimal(match["year"]) in index.values
    if match["decade"]:
        return False  # stated only when the article has the same words (checked by the caller)
    year, month, day = _date_fields(match)
    wanted = [(i, value) for i, value in enumerate((year, month, day)) if value is not None]
    return any(all(date[i] == value for i, value in wanted) for date in index.dates)


# -- names and citations ------------------------------------------------------------------------


def _sentence_start(text: str, start: int) -> bool:
    """Whether the word at `start` opens a sentence (after quotes, brackets or a list bullet)."""
    before = text[:start]
    stripped = before.rstrip(_OPENERS)
    if not stripped or "\n" in before[len(stripped) :] or before.rstrip()[-1:] in _QUOTES:
        return True
    if stripped[-1] not in _SENTENCE_END:
        return False
    if stripped[-1] == ".":  # "Dr. Smith" or "the U.S. Senate" do not start a sentence
        word = re.search(r"([\w.]+)\.$", stripped)
        if word and (word.group(1).lower() in _TITLES or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word.group(1))):
            return False
    return True


def _capitalised(word: str) -> bool:
    return word[:1].isupper() and word.rstrip(".").lower() not in _BREAKS and not _BRIEF_ID.fullmatch(word)


def _runs(text: str) -> list[list[re.Match[str]]]:
    """Runs of capitalised tokens, joined by single spaces, connectors and titles' dots."""
    runs: list[list[re.Match[str]]] = []
    current: list[re.Match[str]] = []
    pending: list[re.Match[str]] = []  # connectors waiting for a capitalised word after them
    previous_end = -1
    for token in _TOKEN.finditer(text):
        gap = text[previous_end : token.start()] if previous_end >= 0 else None
        joined = current and gap is not None and (gap == " " or (gap == ". " and _is_title(current[-1].group())))
        word = token.group()
        if joined and _capitalised(word):
            current += [*pending, token]
            pending = []
        elif joined and word.lower() in _CONNECTORS and not word[:1].isupper():
            pending.append(token)
        else:
            if current:
                runs.append(current)
            current, pending = ([token] if _capitalised(word) else []), []
        previous_end = token.end()
    if current:
        runs.append(current)
    return runs


def _is_title(word: str) -> bool:
    return word.lower() in _TITLES


def _trimmed(text: str, run: list[re.Match[str]]) -> list[re.Match[str]]:
    """A run without a common sentence-first word, and without a lone sentence-first word that is
    neither an acronym nor capitalised elsewhere in the text."""
    if not _sentence_start(text, run[0].start()):
        return run
    first = run[0].group()
    if first.lower() in _COMMON or first.lower() in _SOURCE_WORDS or _ADVERBISH.search(first.lower()):
        run = run[1:]
        while run and run[0].group().lower() in _CONNECTORS:
            run = run[1:]
        return run
    if len(run) > 1 or re.fullmatch(r"[A-Z][A-Z0-9.&-]+", first):
        return run
    following = re.match(r"(?:['’]s)?\s+(\w+)", text[run[0].end() :])
    if following and following.group(1) in _SOURCE_WORDS:  # "Gallup's poll found…": a citation
        return run
    elsewhere = re.finditer(r"(?<!\w)" + re.escape(first) + r"(?!\w)", text)
    return run if any(not _sentence_start(text, m.start()) for m in elsewhere) else []


def _name_spans(text: str, index: ArticleIndex) -> list[_Span]:
    spans = []
    for whole in _runs(text):
        run = _trimmed(text, whole)
        if all(token.group().lower() in _NOT_NAMES | _CONNECTORS for token in run):
            continue
        start, end = run[0].start(), run[-1].end()
        name = re.sub(r"['’]s$", "", text[start:end])
        end = start + len(name)
        last = name.split()[-1].lower()
        after = re.match(r"(?:['’]s)?\s+(\w+)", text[run[-1].end() :])
        kind = "name"
        if last in _SOURCE_WORDS or _after_according_to(text, start):
            kind = "citation"
        elif after and after.group(1).lower() in _SOURCE_WORDS and after.group(1).islower():
            kind, end = "citation", run[-1].end() + after.end()
        span = _Span(start, end, kind, text[start:end])
        span.stated = index.mentions(span.text) or (kind == "name" and _surname_stated(run, index))
        spans.append(span)
    return spans


def _after_according_to(text: str, start: int) -> bool:
    return re.search(r"according to (?:the |a |an )?$", text[:start], re.IGNORECASE) is not None


def _surname_stated(run: list[re.Match[str]], index: ArticleIndex) -> bool:
    """A person's name (two or three plain capitalised words, after any title) the article names by surname."""
    words = [token.group() for token in run if not _is_title(token.group().rstrip("."))]
    plain = all(re.fullmatch(r"[A-Z][a-z'’-]+", word) for word in words)
    fewest = 1 if len(words) < len(run) else 2  # "Dr. Reyes" is a person; a lone word is not
    return fewest <= len(words) <= 3 and plain and index.mentions(re.sub(r"['’]s$", "", words[-1]))


# -- one text, one item -------------------------------------------------------------------------


def _spans(text: str, index: ArticleIndex) -> list[_Span]:
    """Every candidate in `text`, in rule order (url, date, citation, figure, name)."""
    spans = []
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?")
        spans.append(_Span(match.start(), match.start() + len(url), "url", url))
    for match in _DATE.finditer(text):
        spans.append(_Span(match.start(), match.end(), "date", match.group(), _date_stated(match, index)))
    names = _name_spans(text, index)
    spans += [span for span in names if span.kind == "citation"]
    for start, end, value in _figures(text):
        spans.append(_Span(start, end, "figure", text[start:end], value in index.values))
    spans += [span for span in names if span.kind == "name"]
    return spans


def text_checks(text: str, index: ArticleIndex) -> list[dict[str, str]]:
    """The checks for one text: each candidate not overlapping an earlier rule's, not stated."""
    taken: list[_Span] = []
    for span in _spans(text, index):
        if not any(span.start < other.end and other.start < span.end for other in taken):
            taken.append(span)
    flagged = [span for span in taken if not span.stated and span.text.strip() and not index.mentions(span.text)]
    return [{"kind": span.kind, "text": span.text} for span in sorted(flagged, key=lambda span: span.start)]


def item_texts(item: dict[str, Any], fields: Iterable[str]) -> list[str]:
    """The strings of an item's checked fields (a list field gives each of its strings)."""
    texts: list[str] = []
    for name in fields:
        value = item.get(name)
        texts += [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
    return texts


def item_checks(item: dict[str, Any], fields: Iterable[str], index: ArticleIndex) -> list[dict[str, str]]:
    """One item's checks over its fields, each kind and text once."""
    checks: list[dict[str, str]] = []
    for text in item_texts(item, fields):
        checks += [check for check in text_checks(text, index) if check not in checks]
    return checks


def with_checks(claims: list[dict[str, Any]], article_text: str) -> list[dict[str, Any]]:
    """The claims with `checks` on every rebuttal and missing-context item."""
    index = ArticleIndex(article_text)
    return [
        {
            **claim,
            "rebuttals": [{**r, "checks": item_checks(r, REBUTTAL_FIELDS, index)} for r in claim["rebuttals"]],
            "missing_context": [
                {**m, "checks": item_checks(m, MISSING_CONTEXT_FIELDS, index)} for m in claim["missing_context"]
            ],
        }
        for claim in claims
    ]


def count(claims: list[dict[str, Any]]) -> dict[str, int]:
    """How many checks a brief's claims carry, in total and by kind."""
    counts = dict.fromkeys(KINDS, 0)
    for claim in claims:
        for item in [*claim.get("rebuttals", []), *claim.get("missing_context", [])]:
            for check in item.get("checks", []):
                counts[check["kind"]] = counts.get(check["kind"], 0) + 1
    return {"total": sum(counts.values()), **counts}
