"""Browse: the caption-rating store (SPEC 5: three 1-5 scores per image and caption).

Reads the run index's validation split; writes `results/ratings.sqlite` and the CSV export in the
form of the authors' `record/ratings_*.csv`.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from rs5m.browse.index import fetch_all

RATINGS_PATH = Path("results") / "ratings.sqlite"

# (form field and CSV column, label shown to the rater, what 5 means)
SCORES = (
    ("relevance_detail", "Relevance & detail", "the caption describes the image fully and correctly"),
    ("hallucination", "Hallucination", "nothing in the caption is absent from the image"),
    ("fluency", "Fluency", "the caption reads as fluent, grammatical English"),
)
SCORE_NAMES = tuple(name for name, _, _ in SCORES)
EXPORT_COLUMNS = ("image_path", "description", *SCORE_NAMES)
# The authors' rating page served images from its static/ folder; their CSVs keep that prefix.
EXPORT_IMAGE_PREFIX = "static/"
DEFAULT_SEED = "rs5m"
DEFAULT_SESSION_SIZE = 500
MAX_SESSION_SIZE = 100_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY, rater TEXT NOT NULL, seed TEXT NOT NULL, size INTEGER NOT NULL,
    created_at TEXT NOT NULL, UNIQUE (rater, seed, size));
CREATE TABLE IF NOT EXISTS session_items (
    session_id INTEGER NOT NULL REFERENCES sessions(id), pos INTEGER NOT NULL, uid TEXT NOT NULL,
    PRIMARY KEY (session_id, pos));
CREATE TABLE IF NOT EXISTS ratings (
    session_id INTEGER NOT NULL REFERENCES sessions(id), uid TEXT NOT NULL, rater TEXT NOT NULL,
    subset TEXT, source TEXT, img_name TEXT NOT NULL, caption TEXT NOT NULL,
    relevance_detail INTEGER NOT NULL CHECK (relevance_detail BETWEEN 1 AND 5),
    hallucination INTEGER NOT NULL CHECK (hallucination BETWEEN 1 AND 5),
    fluency INTEGER NOT NULL CHECK (fluency BETWEEN 1 AND 5),
    rated_at TEXT NOT NULL, PRIMARY KEY (session_id, uid));
"""


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text cell that no spreadsheet runs as a formula: `'` before a leading = + - @ tab or CR."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_line(cells) -> str:
    """One LF-terminated CSV line as the csv module writes it (minimal quoting), except that a cell
    holding a CR is quoted too, so that readers do not take it for a line end."""
    out = []
    for cell in cells:
        text = "" if cell is None else str(cell)
        if any(c in text for c in ',"\n\r'):
            text = '"' + text.replace('"', '""') + '"'
        out.append(text)
    return ",".join(out) + "\n"


class RatingError(ValueError):
    """A rating that must not be stored: a score outside 1-5, or a sample outside the session."""


@dataclass(frozen=True)
class Session:
    id: int
    rater: str
    seed: str
    size: int
    created_at: str


def draw_order(uids: list[str], seed: str) -> list[str]:
    """The validation samples in the order a session with this seed rates them.

    Sorting by a hash of (seed, uid) gives the same order on every machine and for every rater,
    whatever order the shards were indexed in, so two raters with one seed rate the same images.
    """
    return sorted(uids, key=lambda uid: (hashlib.blake2b(f"{seed}\x1f{uid}".encode(), digest_size=8).digest(), uid))


def parse_score(value: str | None, name: str) -> int:
    if value is None or not value.strip().isdigit():
        raise RatingError(f"{name}: a whole number from 1 to 5 is required")
    score = int(value)
    if not 1 <= score <= 5:
        raise RatingError(f"{name}: {score} is outside 1-5")
    return score


class RatingStore:
    def __init__(self, db_path: str | Path):
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self.connect()) as conn, conn:
            conn.executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def secret(self) -> bytes:
        """The key behind the CSRF tokens; kept in the database so open forms survive a restart."""
        with closing(self.connect()) as conn, conn:
            conn.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('csrf_secret', ?)", (secrets.token_hex(32),))
            return bytes.fromhex(conn.execute("SELECT value FROM meta WHERE name = 'csrf_secret'").fetchone()[0])

    def open_session(self, rater: str, seed: str, size: int, validation_uids: list[str]) -> Session:
        """The session of this rater, seed and size: created with its drawn samples, or resumed."""
        rater, seed = rater.strip(), seed.strip() or DEFAULT_SEED
        if not rater or len(rater) > 100:
            raise RatingError("a rater name of 1-100 characters is required")
        if len(seed) > 100:
            raise RatingError("the seed has at most 100 characters")
        if not 1 <= size <= MAX_SESSION_SIZE:
            raise RatingError(f"the session size must be 1-{MAX_SESSION_SIZE}")
        with closing(self.connect()) as conn, conn:
            row = conn.execute(
                "SELECT * FROM sessions WHERE rater = ? AND seed = ? AND size = ?", (rater, seed, size)
            ).fetchone()
            if row is None:
                drawn = draw_order(validation_uids, seed)[:size]
                if not drawn:
                    raise RatingError("the run has no validation samples to rate")
                created = datetime.now(timezone.utc).isoformat(timespec="seconds")
                cursor = conn.execute(
                    "INSERT INTO sessions (rater, seed, size, created_at) VALUES (?, ?, ?, ?)",
                    (rater, seed, size, created),
                )
                conn.executemany(
                    "INSERT INTO session_items (session_id, pos, uid) VALUES (?, ?, ?)",
                    [(cursor.lastrowid, pos, uid) for pos, uid in enumerate(drawn)],
                )
                row = conn.execute("SELECT * FROM sessions WHERE id = ?", (cursor.lastrowid,)).fetchone()
        return Session(**dict(row))

    def session(self, session_id: int) -> Session | None:
        with closing(self.connect()) as conn:
            row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return Session(**dict(row)) if row else None

    def sessions(self) -> list[dict]:
        return fetch_all(
            self.connect,
            "SELECT s.*, (SELECT COUNT(*) FROM session_items i WHERE i.session_id = s.id) AS items, "
            "(SELECT COUNT(*) FROM ratings r WHERE r.session_id = s.id) AS rated "
            "FROM sessions s ORDER BY s.id",
        )

    def items(self, session_id: int) -> list[dict]:
        """Every drawn sample of a session in order, with its scores where it has been rated."""
        return fetch_all(
            self.connect,
            "SELECT i.pos, i.uid, r.relevance_detail, r.hallucination, r.fluency FROM session_items i "
            "LEFT JOIN ratings r ON r.session_id = i.session_id AND r.uid = i.uid "
            "WHERE i.session_id = ? ORDER BY i.pos",
            (session_id,),
        )

    def rate(self, session_id: int, uid: str, sample: dict, scores: dict[str, int]) -> None:
        """Store (or revise) one sample's scores; the sample must belong to the session."""
        for name in SCORE_NAMES:
            # bool is an int subclass; True must not pass as a score of 1.
            if type(scores.get(name)) is not int or not 1 <= scores[name] <= 5:
                raise RatingError(f"{name}: a score from 1 to 5 is required")
        with closing(self.connect()) as conn, conn:
            session = conn.execute("SELECT rater FROM sessions WHERE id = ?", (session_id,)).fetchone()
            member = conn.execute(
                "SELECT 1 FROM session_items WHERE session_id = ? AND uid = ?", (session_id, uid)
            ).fetchone()
            if session is None or member is None:
                raise RatingError("this sample is not part of this session")
            conn.execute(
                "INSERT INTO ratings (session_id, uid, rater, subset, source, img_name, caption, relevance_detail, "
                "hallucination, fluency, rated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, uid) DO UPDATE SET relevance_detail = excluded.relevance_detail, "
                "hallucination = excluded.hallucination, fluency = excluded.fluency, rated_at = excluded.rated_at",
                (
                    session_id,
                    uid,
                    session["rater"],
                    sample.get("subset"),
                    sample.get("source"),
                    sample["img_name"],
                    sample["caption"],
                    scores["relevance_detail"],
                    scores["hallucination"],
                    scores["fluency"],
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                ),
            )

    def _ratings_where(self, session_id: int | None, rater: str | None) -> tuple[str, list]:
        clauses, params = ["1 = 1"], []
        if session_id is not None:
            clauses.append("r.session_id = ?")
            params.append(session_id)
        if rater:
            clauses.append("r.rater = ?")
            params.append(rater)
        return " AND ".join(clauses), params

    def export_csv(self, session_id: int | None = None, rater: str | None = None, exact: bool = False) -> str:
        """The ratings as `image_path,description,relevance_detail,hallucination,fluency`, LF lines.

        A web caption that a spreadsheet would run as a formula (a cell starting with = + - @, tab
        or CR) gets a leading `'`; `exact` writes the text as rated, the authors' exact format.
        """
        where, params = self._ratings_where(session_id, rater)
        with closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT r.img_name, r.caption, r.relevance_detail, r.hallucination, r.fluency FROM ratings r "
                f"LEFT JOIN session_items i ON i.session_id = r.session_id AND i.uid = r.uid WHERE {where} "
                "ORDER BY r.session_id, i.pos",
                params,
            ).fetchall()
        lines = [csv_line(EXPORT_COLUMNS)]
        for img_name, caption, *scores in rows:
            cells = [EXPORT_IMAGE_PREFIX + img_name, caption]
            lines.append(csv_line([*(cells if exact else map(spreadsheet_safe, cells)), *scores]))
        return "".join(lines)

    def summary(self, session_id: int | None = None, rater: str | None = None) -> dict[str, list[dict]]:
        """Mean scores and counts per subset, per source, per rater and over all ratings."""
        where, params = self._ratings_where(session_id, rater)
        means = ", ".join(f"AVG(r.{name}) AS {name}" for name in SCORE_NAMES)
        out = {}
        for level, group in (
            ("overall", None),
            ("subset", "r.subset"),
            ("source", "r.subset, r.source"),
            ("rater", "r.rater"),
        ):
            select = f"{group}, " if group else ""
            tail = f" GROUP BY {group} ORDER BY {group}" if group else ""
            with closing(self.connect()) as conn:
                rows = conn.execute(
                    f"SELECT {select}COUNT(*) AS n, {means} FROM ratings r WHERE {where}{tail}", params
                ).fetchall()
            out[level] = [dict(row) for row in rows if row["n"]]
        return out
