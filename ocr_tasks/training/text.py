"""Sample the words printed on synthetic business documents.

Words come from the system word list (``/usr/share/dict/words``, Debian package ``wamerican``)
plus built-in common and business vocabulary, mixed with numbers, dates, prices, percentages,
phone numbers, codes, e-mail addresses, URLs and attached punctuation, in lower, Title and UPPER
case, so that every printable ASCII character shows up. Every token is one word: it never
contains whitespace. Multi-word values (``"Dec. 31, 1989"``) are returned as token lists.
"""

from __future__ import annotations

import functools
import random
import string
from pathlib import Path

import numpy as np

__all__ = ["PRINTABLE_ASCII", "WORDS_FILE", "WordListUnavailableError", "WordSampler", "load_dictionary"]

#: The 94 printable, non-space ASCII characters.
PRINTABLE_ASCII = "".join(chr(c) for c in range(33, 127))
#: System word list (Debian package ``wamerican``).
WORDS_FILE = "/usr/share/dict/words"

_COMMON = (
    "the of and to a in for is on that by this with you it not or be are from at as your all have new more an was "
    "we will can us about if my has but our one other do no they he up may what which their out use any there see "
    "only so his when who also now get pm am been would how were me some these its like than find back top had "
    "over into last most after before such please should here must each per under within order total date name"
).split()
_BUSINESS = (
    "account address amount approved attention authorized balance bill brand budget business cancel carton "
    "cigarette client code comments company confidential contract copy cost customer delivery department "
    "description director distribution division draft due employee estimate expense fax file form from "
    "funding grant invoice issue item manager market marketing meeting memo message month net number office "
    "order page paid payment period phone plan price product program project proposal purchase quantity "
    "received record region remarks report request research requisition sales schedule section signature "
    "source special state status street subject summary supplier tax telephone title tobacco transmittal "
    "unit vendor volume week year zip research development division laboratory samples test results"
).split()
_FIRST = (
    "John Mary James Robert Linda Michael William David Richard Susan Thomas Charles Nancy Karen Daniel Paul "
    "Mark Donald George Kenneth Steven Edward Brian Ronald Anthony Kevin Jason Gary Helen Sandra Donna Carol "
    "Ruth Sharon Michelle Laura Sarah Betty Dorothy Lisa Frank Scott Eric Stephen Andrew Raymond Walter"
).split()
_LAST = (
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore Martin Jackson White "
    "Harris Thompson Clark Lewis Robinson Walker Young Allen King Wright Scott Green Baker Adams Nelson Hill "
    "Campbell Mitchell Roberts Carter Phillips Evans Turner Parker Collins Edwards Stewart Morris Murphy Cook"
).split()
_LABELS = (
    "Name Date To From Subject Re Phone Fax Address City State Zip Company Title Department Signature Total "
    "Amount Account Code Brand Description Quantity Price Remarks Comments Approved Date Issued Region Division "
    "Project Number Ref Budget Cost Pages Attention Telephone Manager Supplier Vendor Status Period Effective"
).split()
_ABBREVIATIONS = tuple(
    "etc. e.g. i.e. Mr. Mrs. Dr. Inc. Co. Corp. Ltd. No. Nos. P.O. U.S. Jr. vs. approx. Dept. Ave. St. Rd. Ext. "
    "Attn: cc:".split()
)
#: Slash pairs and abbreviations that forms are full of.
_SLASHED = tuple(
    "and/or Yes/No YES/NO Y/N w/ w/o c/o C/O N/A n/a A/C P/N S/N I/O M/F AM/PM Mr./Mrs. his/her he/she "
    "Date/Time In/Out To/From Name/Title City/State Dept./Div. Q/A R&D P&L".split()
)
_MONTHS = ("January February March April May June July August September October November December").split()
_TLDS = ("com", "org", "net", "gov", "edu", "co.uk", "us")
_SYMBOLIC = tuple(
    "a+b x=5 <10 >5 [1] [a] {A} {x} C:\\DATA A:\\FILE.TXT file_name NET_WT ^2 ~10 ~ | a|b ``draft'' `98 * ** *** "
    "+/- = == <> -> @ & # % \\ / _____ (*) [x] {1,2} 2^8 q.v. Sec.4(b) 2+2=4 10<x<20 #2-A".split()
)


class WordListUnavailableError(RuntimeError):
    """The system word list is missing; the message names the Debian package to install."""


@functools.lru_cache(maxsize=4)
def load_dictionary(path: str = WORDS_FILE) -> tuple[str, ...]:
    """Read the word list: ASCII letters only, possessives stripped, duplicates removed.

    Args:
        path: Word list file, one word per line.

    Returns:
        The words, in file order.

    Raises:
        WordListUnavailableError: When the file does not exist.
    """
    file = Path(path)
    if not file.is_file():
        raise WordListUnavailableError(
            f"word list {path} not found; install it with `apt-get install -y wamerican`"
        )
    seen: dict[str, None] = {}
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        word = line.strip().removesuffix("'s")
        if 1 < len(word) <= 16 and word.isascii() and word.isalpha():
            seen.setdefault(word, None)
    return tuple(seen)


def _python_rng(rng: random.Random | np.random.Generator) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    return random.Random(int(rng.integers(0, 2**63 - 1)))


class WordSampler:
    """Seeded sampler of document tokens.

    Args:
        rng: Source of randomness; a numpy generator is used once to seed an internal
            :class:`random.Random`, so results are deterministic for a seeded generator.
        words: Vocabulary; defaults to :func:`load_dictionary`.

    >>> WordSampler(random.Random(0), words=("alpha", "beta")).word(case="upper") in {"ALPHA", "BETA"}
    True
    """

    def __init__(
        self, rng: random.Random | np.random.Generator, words: tuple[str, ...] | None = None
    ) -> None:
        self.rng = _python_rng(rng)
        self.words = words if words is not None else load_dictionary()

    # -- plain words -------------------------------------------------------------------------
    def case(self, text: str, case: str | None = None) -> str:
        """Apply ``"lower"``, ``"title"``, ``"upper"`` or ``"keep"``; None picks one at random."""
        case = case or self.rng.choices(("lower", "title", "upper", "keep"), (0.55, 0.25, 0.12, 0.08))[0]
        if case == "lower":
            return text.lower()
        if case == "title":
            return text[:1].upper() + text[1:].lower()
        return text.upper() if case == "upper" else text

    def word(self, case: str | None = "keep") -> str:
        """One vocabulary word (common, business or dictionary word)."""
        r = self.rng.random()
        pool = _COMMON if r < 0.35 else _BUSINESS if r < 0.55 else self.words
        return self.case(self.rng.choice(pool), case)

    def name(self) -> list[str]:
        """A person's name, e.g. ``["J.", "Smith"]`` or ``["SMITH,", "MARY"]``."""
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        style = self.rng.randrange(5)
        if style == 0:
            return [first[0] + ".", last]
        if style == 1:
            return [last.upper() + ",", first.upper()]
        if style == 2:
            return [first, chr(65 + self.rng.randrange(26)) + ".", last]
        return [first, last]

    # -- numbers and codes -------------------------------------------------------------------
    def number(self) -> str:
        """An integer, decimal, fraction or ordinal."""
        r = self.rng.random()
        if r < 0.35:
            return str(self.rng.randrange(1, 100))
        if r < 0.55:
            return f"{self.rng.randrange(100, 10**7):,}"
        if r < 0.7:
            return f"{self.rng.uniform(0, 1000):.{self.rng.randrange(1, 4)}f}"
        if r < 0.8:
            return f"{self.rng.randrange(1, 10)}/{self.rng.choice((2, 3, 4, 8, 16))}"
        if r < 0.9:
            n = self.rng.randrange(1, 40)
            suffix = "th" if 10 < n % 100 < 14 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
            return f"{n}{suffix}"
        return str(self.rng.randrange(10**5, 10**10))

    def date(self) -> list[str]:
        """A date in one of several formats (some span several tokens)."""
        y, m, d = self.rng.randrange(1965, 2000), self.rng.randrange(1, 13), self.rng.randrange(1, 29)
        month = _MONTHS[m - 1]
        fmt = self.rng.randrange(9)
        if fmt == 0:
            return [f"{m}/{d}/{y % 100:02d}"]
        if fmt == 1:
            return [f"{m:02d}/{d:02d}/{y}"]
        if fmt == 2:
            return [f"{m:02d}-{d:02d}-{y % 100:02d}"]
        if fmt == 3:
            return [f"{y}-{m:02d}-{d:02d}"]
        if fmt == 4:
            return [f"{d}.{m}.{y % 100:02d}"]
        if fmt == 5:
            return [month[:3] + ".", f"{d},", str(y)]
        if fmt == 6:
            return [str(d), self.case(month[:3], "upper" if self.rng.random() < 0.5 else "title"), str(y)]
        if fmt == 7:
            return [f"{d}-{month[:3].upper()}-{y % 100:02d}"]
        return [month, f"{d},", str(y)]

    def price(self) -> str:
        """A money amount such as ``$1,234.56``, ``12.50`` or ``($45.00)``."""
        value = self.rng.choice(
            (self.rng.uniform(0, 100), self.rng.uniform(0, 10**5), float(self.rng.randrange(1, 500)))
        )
        text = f"{value:,.2f}" if self.rng.random() < 0.85 else f"{int(value):,}"
        r = self.rng.random()
        if r < 0.55:
            text = "$" + text
        elif r < 0.62:
            text = f"(${text})"
        elif r < 0.66:
            text = "-" + text
        return text

    def percent(self) -> str:
        """A percentage such as ``12%``, ``3.5%`` or ``(12.5%)``."""
        text = f"{self.rng.uniform(0, 100):.{self.rng.randrange(0, 3)}f}%"
        return f"({text})" if self.rng.random() < 0.15 else ("+" if self.rng.random() < 0.1 else "") + text

    def phone(self) -> list[str]:
        """A US phone or fax number, sometimes with an extension."""
        a, b, c = self.rng.randrange(200, 999), self.rng.randrange(200, 999), self.rng.randrange(0, 10000)
        fmt = self.rng.randrange(6)
        tokens = [
            [f"({a})", f"{b}-{c:04d}"],
            [f"({a}){b}-{c:04d}"],
            [f"{a}-{b}-{c:04d}"],
            [f"{a}/{b}-{c:04d}"],
            [f"{a}.{b}.{c:04d}"],
            [f"1-800-{b}-{c:04d}"],
        ][fmt]
        if self.rng.random() < 0.15:
            tokens += self.rng.choice(
                (["Ext.", str(self.rng.randrange(100, 9999))], [f"x{self.rng.randrange(10, 999)}"])
            )
        return tokens

    def code(self) -> str:
        """An identifier: ``AB-1234``, ``#45``, ``No.123``, ``RJR-88/4``, ``A1B2C3`` ..."""
        letters = "".join(self.rng.choices(string.ascii_uppercase, k=self.rng.randrange(1, 4)))
        digits = str(self.rng.randrange(1, 10 ** self.rng.randrange(2, 7)))
        fmt = self.rng.randrange(8)
        if fmt == 0:
            return f"{letters}-{digits}"
        if fmt == 1:
            return f"#{digits}"
        if fmt == 2:
            return f"No.{digits}"
        if fmt == 3:
            return f"{letters}{digits}"
        if fmt == 4:
            return f"{digits}-{self.rng.randrange(10, 99)}/{self.rng.randrange(1, 9)}"
        if fmt == 5:
            return "".join(
                self.rng.choices(string.ascii_uppercase + string.digits, k=self.rng.randrange(4, 9))
            )
        if fmt == 6:
            return f"{letters.lower()}{self.rng.randrange(1, 99)}{self.rng.choice('-_.')}{digits}"
        return f"{digits}{self.rng.choice(string.ascii_uppercase)}"

    def email(self) -> str:
        """An e-mail address."""
        user = self.rng.choice(_FIRST).lower()[: self.rng.randrange(1, 8)] + self.rng.choice(
            ("", ".", "_", "-")
        )
        user += self.rng.choice(_LAST).lower()
        host = self.rng.choice(self.words).lower()[:10]
        return f"{user}@{host}.{self.rng.choice(_TLDS)}"

    def url(self) -> str:
        """A web address, sometimes with a path and query string."""
        host = self.rng.choice(("www.", "", "ftp.")) + self.rng.choice(self.words).lower()[:12] + "."
        text = self.rng.choice(("http://", "https://", "", "")) + host + self.rng.choice(_TLDS)
        if self.rng.random() < 0.5:
            text += "/" + self.rng.choice(self.words).lower()[:10]
            if self.rng.random() < 0.4:
                text += f"?id={self.rng.randrange(1, 999)}&q={self.rng.choice(_COMMON)}"
            elif self.rng.random() < 0.3:
                text += "/~" + self.rng.choice(_FIRST).lower() + "/index.html"
        return text

    def symbolic(self) -> str:
        """A token of rare symbols: brackets, braces, backslashes, carets, tildes, bars, backquotes."""
        return self.rng.choice(_SYMBOLIC)

    # -- mixtures ----------------------------------------------------------------------------
    def token(self) -> str:
        """One token of any kind, with punctuation attached now and then."""
        r = self.rng.random()
        if r < 0.58:
            return self.punctuate(self.word(case=None))
        if r < 0.62:
            return self.compound()
        if r < 0.70:
            return self.punctuate(self.number())
        if r < 0.74:
            return self.price()
        if r < 0.76:
            return self.percent()
        if r < 0.80:
            return self.rng.choice(self.date())
        if r < 0.84:
            return self.code()
        if r < 0.88:
            return self.rng.choice(_ABBREVIATIONS)
        if r < 0.90:
            return self.rng.choice(self.phone())
        if r < 0.92:
            return self.email() if self.rng.random() < 0.5 else self.url()
        if r < 0.95:
            return self.symbolic()
        return self.rng.choice(self.name())

    def punctuate(self, text: str) -> str:
        """Attach punctuation to a word now and then: ``Name:``, ``(see``, ``end.``, ``'98``."""
        r = self.rng.random()
        if r < 0.75:
            return text
        if r < 0.90:
            return text + self.rng.choice(
                (",", ",", ".", ".", ":", ";", "?", "!", ")", "'", '"', "...", "),", ".)", "/", "/", "-", "-", "#")
            )
        if r < 0.97:
            return self.rng.choice(("(", '"', "'", "[", "`", "<", "*")) + text
        return self.rng.choice(('"{}"', "({})", "'{}'", "[{}]", "<{}>", "{{{}}}", "-{}-", "_{}_")).format(
            text
        )

    def compound(self) -> str:
        """A slashed or hyphenated compound: ``and/or``, ``N/A``, ``Date/``, ``follow-up``, ``w/``."""
        r = self.rng.random()
        if r < 0.35:
            return self.rng.choice(_SLASHED)
        case = self.rng.choices(("lower", "title", "upper"), (0.5, 0.3, 0.2))[0]
        first = self.word(case=case)
        if r < 0.5:
            return first + self.rng.choice(("/", "-"))
        return first + ("/" if r < 0.75 else "-") + self.word(case=case)

    def sentence(self, n_words: int | None = None) -> list[str]:
        """Running text: capitalised first word, commas now and then, a final stop."""
        n = n_words or max(2, int(self.rng.gauss(12, 5)))
        tokens = [self.word(case="lower") if self.rng.random() < 0.8 else self.token() for _ in range(n)]
        tokens[0] = tokens[0][:1].upper() + tokens[0][1:]
        for i in range(1, n - 1):
            if self.rng.random() < 0.08 and tokens[i][-1].isalnum():
                tokens[i] += ","
        if tokens[-1][-1].isalnum():
            tokens[-1] += self.rng.choices((".", "?", "!", ":", ";"), (0.85, 0.05, 0.03, 0.04, 0.03))[0]
        return tokens

    def label(self) -> list[str]:
        """A form field label such as ``["Account", "No.:"]`` or ``["DATE:"]``."""
        words = [self.rng.choice(_LABELS)]
        if self.rng.random() < 0.35:
            words.append(
                self.rng.choice(("No.", "Number", "Name", "Date", "Code", "#", "Phone", "Type", "(s)"))
            )
        case = self.rng.choices(("title", "upper", "keep"), (0.4, 0.45, 0.15))[0]
        words = [self.case(w, case) for w in words]
        words[-1] += self.rng.choices((":", "", ".", ":", "/", "#"), (0.56, 0.23, 0.05, 0.08, 0.05, 0.03))[0]
        return words

    def value(self, kind: str | None = None) -> list[str]:
        """A form field value: ``"text"``, ``"name"``, ``"date"``, ``"number"``, ``"price"``,
        ``"phone"``, ``"code"``, ``"email"`` or ``"url"``; None picks one."""
        kind = kind or self.rng.choice(
            ("text", "text", "name", "date", "number", "price", "phone", "code", "email", "url")
        )
        single = {
            "number": self.number,
            "price": self.price,
            "code": self.code,
            "email": self.email,
            "url": self.url,
        }
        if kind in single:
            return [single[kind]()]
        if kind == "name":
            return self.name()
        if kind == "date":
            return self.date()
        if kind == "phone":
            return self.phone()
        case = self.rng.choices(("keep", "upper", "title"), (0.5, 0.3, 0.2))[0]
        return [self.case(self.token(), case) for _ in range(self.rng.randrange(1, 5))]

    def address(self) -> list[list[str]]:
        """A postal address as lines of tokens: street, then city/state/zip."""
        street = [str(self.rng.randrange(1, 9999)), self.case(self.rng.choice(self.words), "title")]
        street.append(self.rng.choice(("Street", "St.", "Avenue", "Ave.", "Blvd.", "Road", "Drive", "Suite")))
        if self.rng.random() < 0.3:
            street += [
                self.rng.choice(("Suite", "P.O.", "Box", "Bldg.", "Floor")),
                str(self.rng.randrange(1, 999)),
            ]
        city = self.case(self.rng.choice(self.words), self.rng.choice(("title", "upper"))) + ","
        state = "".join(self.rng.choices(string.ascii_uppercase, k=2))
        zipcode = f"{self.rng.randrange(10000, 99999)}" + (
            f"-{self.rng.randrange(1000, 9999)}" if self.rng.random() < 0.3 else ""
        )
        return [street, [city, state, zipcode]]

    def heading(self) -> list[str]:
        """A heading or title such as ``["QUARTERLY", "SALES", "REPORT"]``."""
        n = self.rng.randrange(1, 5)
        case = self.rng.choices(("upper", "title"), (0.6, 0.4))[0]
        return [self.case(self.word(), case) for _ in range(n)]
