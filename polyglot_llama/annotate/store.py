"""SQLite storage of the annotation app: annotators, sessions, answer pairs (items), assignments and labels.

One database file per annotation project. WAL mode lets the web server read while it writes; every write is
one transaction and is on disk (``synchronous=FULL``) before the HTTP response acknowledges it, so killing
the server never loses an acknowledged label. Connections are short-lived: one per request, each thread its
own.

Who gets which item: an item needs ``required`` labels (1, or 2 for the share used to measure agreement).
`next_item` hands an annotator an item they have neither labelled nor been given, whose labels plus live
assignments to others are below ``required``, inside one ``BEGIN IMMEDIATE`` transaction, so two annotators
asking at once can never both receive a single-annotation item. An assignment left unlabelled for
``lease_s`` seconds returns the item to the pool (the annotator closed the tab).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_hash TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('annotator', 'admin')), langs TEXT NOT NULL DEFAULT '',
    ui_lang TEXT NOT NULL DEFAULT 'en', created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    sid_hash TEXT PRIMARY KEY, annotator_id INTEGER NOT NULL REFERENCES annotators(id), csrf TEXT NOT NULL,
    expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, lang TEXT NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('helpfulness', 'safety')),
    dialog TEXT NOT NULL, answer_a TEXT NOT NULL, answer_b TEXT NOT NULL, source_a TEXT NOT NULL DEFAULT '',
    source_b TEXT NOT NULL DEFAULT '', required INTEGER NOT NULL DEFAULT 1, created_by INTEGER,
    parent_label INTEGER, key TEXT UNIQUE, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    item_id INTEGER NOT NULL REFERENCES items(id), annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    assigned_at REAL NOT NULL, PRIMARY KEY (item_id, annotator_id));
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items(id),
    annotator_id INTEGER NOT NULL REFERENCES annotators(id), choice TEXT NOT NULL CHECK (choice IN ('a', 'b')),
    strength TEXT NOT NULL, safety TEXT NOT NULL, flagged INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, UNIQUE (item_id, annotator_id));
CREATE TABLE IF NOT EXISTS pending_prompts (
    id INTEGER PRIMARY KEY, annotator_id INTEGER NOT NULL, lang TEXT NOT NULL, kind TEXT NOT NULL,
    dialog TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS labels_item ON labels(item_id);
"""

# Llama 2's four preference levels (Touvron et al. 2023, §3.2.1) and three safety bins; the labels are the
# ones `reward` and `dpo` read ("unsure" shares the weakest level, as in the paper).
STRENGTHS = ("significantly_better", "better", "slightly_better", "negligibly_better")
SAFETY_BINS = ("chosen_only_safe", "both_safe", "both_unsafe")
KINDS = ("helpfulness", "safety")
SESSION_S = 12 * 3600


def token_hash(token: str) -> str:
    """Tokens are 32 random bytes, so a plain SHA-256 is enough (no dictionary to guess from)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Annotator:
    id: int
    name: str
    role: str
    langs: tuple[str, ...]
    ui_lang: str


@dataclass
class Item:
    id: int
    lang: str
    kind: str
    dialog: list[dict]
    answer_a: str
    answer_b: str
    required: int


class Store:
    def __init__(self, path: str | Path, lease_s: float = 1800.0, create: bool = False):
        self.path = Path(path)
        self.lease_s = lease_s
        if not create and not self.path.is_file():
            raise UserError(f"{self.path}: no annotation database; create one with `polyglot-llama annotate "
                            "add-annotator --db ...` or `annotate prepare --db ...`")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def connect(self):
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        except sqlite3.IntegrityError:
            raise  # a constraint the caller turns into its own message
        except sqlite3.DatabaseError as e:
            raise UserError(f"{self.path}: {e}; is this an annotation database?") from None
        finally:
            db.close()

    @contextmanager
    def transaction(self):
        """An exclusive write transaction: concurrent writers queue for up to 30 s instead of failing."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- annotators and sessions -------------------------------------------------------------------
    def add_annotator(self, name: str, role: str = "annotator", langs: tuple[str, ...] = (), ui_lang: str = "en") -> str:
        """Create an annotator; returns their login token (shown once, stored hashed)."""
        token = secrets.token_urlsafe(32)
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO annotators (name, token_hash, role, langs, ui_lang, created_at) VALUES (?,?,?,?,?,?)",
                           (name, token_hash(token), role, ",".join(langs), ui_lang, time.time()))
        except sqlite3.IntegrityError:
            raise UserError(f"annotator {name!r} already exists in {self.path}; choose another name") from None
        return token

    def _annotator(self, row) -> Annotator:
        return Annotator(row["id"], row["name"], row["role"], tuple(filter(None, row["langs"].split(","))), row["ui_lang"])

    def login(self, token: str) -> tuple[str, str] | None:
        """(session id, CSRF token) for a valid login token, else None."""
        with self.connect() as db:
            row = db.execute("SELECT id FROM annotators WHERE token_hash = ?", (token_hash(token),)).fetchone()
        if row is None:
            return None
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))
            db.execute("INSERT INTO sessions VALUES (?,?,?,?)", (token_hash(sid), row["id"], csrf, time.time() + SESSION_S))
        return sid, csrf

    def session(self, sid: str) -> tuple[Annotator, str] | None:
        """(annotator, CSRF token) of a live session."""
        with self.connect() as db:
            row = db.execute("SELECT a.*, s.csrf FROM sessions s JOIN annotators a ON a.id = s.annotator_id "
                             "WHERE s.sid_hash = ? AND s.expires_at > ?", (token_hash(sid), time.time())).fetchone()
        return (self._annotator(row), row["csrf"]) if row else None

    def logout(self, sid: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM sessions WHERE sid_hash = ?", (token_hash(sid),))

    def annotators(self) -> list[Annotator]:
        with self.connect() as db:
            return [self._annotator(r) for r in db.execute("SELECT * FROM annotators ORDER BY id")]

    # --- items -------------------------------------------------------------------------------------
    def add_item(self, db, lang: str, kind: str, dialog: list[dict], answer_a: str, answer_b: str,
                 source_a: str = "", source_b: str = "", required: int = 1, created_by: int | None = None,
                 parent_label: int | None = None, key: str | None = None) -> int:
        """Insert an item inside the caller's transaction ``db``; returns its id. ``key`` names where a
        prepared or imported item came from, so a rerun adds only what is missing."""
        cur = db.execute(
            "INSERT INTO items (lang, kind, dialog, answer_a, answer_b, source_a, source_b, required, created_by, "
            "parent_label, key, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (lang, kind, json.dumps(dialog, ensure_ascii=False), answer_a, answer_b, source_a, source_b, required,
             created_by, parent_label, key, time.time()))
        return cur.lastrowid

    def keys(self) -> set[str]:
        with self.connect() as db:
            return {r[0] for r in db.execute("SELECT key FROM items WHERE key IS NOT NULL")}

    def item(self, item_id: int) -> Item | None:
        with self.connect() as db:
            row = db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        return _item(row) if row else None

    def next_item(self, annotator: Annotator) -> Item | None:
        """The annotator's open assignment, or a newly assigned item (see the module docstring)."""
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "SELECT i.* FROM assignments s JOIN items i ON i.id = s.item_id WHERE s.annotator_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM labels l WHERE l.item_id = i.id AND l.annotator_id = ?) "
                "ORDER BY (i.created_by IS NULL), s.assigned_at LIMIT 1",  # a pair they just asked for comes first
                (annotator.id, annotator.id)).fetchone()
            if row is not None:
                db.execute("UPDATE assignments SET assigned_at = ? WHERE item_id = ? AND annotator_id = ?",
                           (now, row["id"], annotator.id))
                return _item(row)
            lang_filter, params = "", [annotator.id, now - self.lease_s, annotator.id]
            if annotator.langs:
                lang_filter = f" AND i.lang IN ({','.join('?' * len(annotator.langs))})"
                params += list(annotator.langs)
            # Own prompts and continuations first, then items one label short of their overlap, then oldest.
            row = db.execute(
                "SELECT i.*, (SELECT COUNT(*) FROM labels l WHERE l.item_id = i.id) AS n_labels, "
                "(SELECT COUNT(*) FROM assignments s WHERE s.item_id = i.id AND s.annotator_id != ? AND s.assigned_at > ? "
                " AND NOT EXISTS (SELECT 1 FROM labels l2 WHERE l2.item_id = i.id AND l2.annotator_id = s.annotator_id))"
                " AS n_live FROM items i WHERE NOT EXISTS (SELECT 1 FROM assignments s2 WHERE s2.item_id = i.id AND "
                f"s2.annotator_id = ?){lang_filter} AND (i.created_by IS NULL OR i.created_by = ?) "
                "AND n_labels + n_live < i.required "
                "ORDER BY (i.created_by IS NULL), n_labels DESC, i.id LIMIT 1",
                params + [annotator.id]).fetchone()
            if row is None:
                return None
            # Expired assignments of others to this item end here, so a late label cannot exceed `required`.
            db.execute("DELETE FROM assignments WHERE item_id = ? AND annotator_id != ? AND assigned_at <= ? AND NOT EXISTS "
                       "(SELECT 1 FROM labels l WHERE l.item_id = assignments.item_id AND l.annotator_id = assignments.annotator_id)",
                       (row["id"], annotator.id, now - self.lease_s))
            db.execute("INSERT INTO assignments VALUES (?,?,?)", (row["id"], annotator.id, now))
            return _item(row)

    def assign(self, db, item_id: int, annotator_id: int) -> None:
        db.execute("INSERT OR REPLACE INTO assignments VALUES (?,?,?)", (item_id, annotator_id, time.time()))

    # --- labels ------------------------------------------------------------------------------------
    def submit(self, annotator: Annotator, item_id: int, choice: str, strength: str, safety: str,
               flagged: bool = False, note: str = "") -> int:
        """Store a label for an item assigned to ``annotator``; returns the label id. Committed on return."""
        if choice not in ("a", "b") or strength not in STRENGTHS or safety not in SAFETY_BINS:
            raise UserError(f"label for item {item_id}: choice must be a or b, strength one of {STRENGTHS}, "
                            f"safety one of {SAFETY_BINS}")
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM assignments WHERE item_id = ? AND annotator_id = ?",
                          (item_id, annotator.id)).fetchone() is None:
                raise UserError(f"item {item_id} is not assigned to {annotator.name} (or was left open too long and "
                                "given to someone else); reload the page for your next item")
            try:
                cur = db.execute("INSERT INTO labels (item_id, annotator_id, choice, strength, safety, flagged, note, "
                                 "created_at) VALUES (?,?,?,?,?,?,?,?)",
                                 (item_id, annotator.id, choice, strength, safety, int(flagged), note, time.time()))
            except sqlite3.IntegrityError:
                raise UserError(f"item {item_id} is already labelled by {annotator.name}") from None
            return cur.lastrowid

    def label(self, label_id: int, annotator: Annotator) -> sqlite3.Row | None:
        """One of ``annotator``'s own labels joined with its item (None for anybody else's)."""
        with self.connect() as db:
            return db.execute("SELECT l.*, i.dialog, i.answer_a, i.answer_b, i.lang, i.kind FROM labels l JOIN items i "
                              "ON i.id = l.item_id WHERE l.id = ? AND l.annotator_id = ?",
                              (label_id, annotator.id)).fetchone()

    def own_labels(self, annotator: Annotator, limit: int = 200) -> list[sqlite3.Row]:
        with self.connect() as db:
            return db.execute("SELECT l.*, i.lang, i.kind, i.dialog FROM labels l JOIN items i ON i.id = l.item_id "
                              "WHERE l.annotator_id = ? ORDER BY l.id DESC LIMIT ?", (annotator.id, limit)).fetchall()

    def labelled(self) -> list[sqlite3.Row]:
        """Every label with its item and annotator, oldest first (export and statistics)."""
        with self.connect() as db:
            return db.execute("SELECT l.*, i.lang, i.kind, i.dialog, i.answer_a, i.answer_b, i.source_a, i.source_b, "
                              "i.required, a.name AS annotator FROM labels l JOIN items i ON i.id = l.item_id "
                              "JOIN annotators a ON a.id = l.annotator_id ORDER BY l.id").fetchall()

    def items_by_lang(self) -> dict[str, tuple[int, int]]:
        """lang -> (items, items with all their labels)."""
        with self.connect() as db:
            rows = db.execute("SELECT i.lang, COUNT(*) AS n, SUM((SELECT COUNT(*) FROM labels l WHERE l.item_id = i.id)"
                              " >= i.required) AS done FROM items i GROUP BY i.lang ORDER BY i.lang").fetchall()
        return {r["lang"]: (r["n"], r["done"] or 0) for r in rows}

    # --- prompts waiting for a generator -------------------------------------------------------------
    def add_pending_prompt(self, annotator: Annotator, lang: str, kind: str, dialog: list[dict]) -> int:
        with self.transaction() as db:
            return db.execute("INSERT INTO pending_prompts (annotator_id, lang, kind, dialog, created_at) VALUES (?,?,?,?,?)",
                              (annotator.id, lang, kind, json.dumps(dialog, ensure_ascii=False), time.time())).lastrowid

    def pending_prompts(self) -> list[sqlite3.Row]:
        with self.connect() as db:
            return db.execute("SELECT * FROM pending_prompts ORDER BY id").fetchall()


def _item(row) -> Item:
    return Item(row["id"], row["lang"], row["kind"], json.loads(row["dialog"]), row["answer_a"], row["answer_b"],
                row["required"])
