"""Browse: the web application (stdlib WSGI) over a run folder's index, ledger and ratings.

Reads the index (`results/browse/index.sqlite`), the ledger and `results/stats/*`; writes ratings
to `results/ratings.sqlite` through RatingStore. Every route is a small function of one request.

Size: the request handler and its routes (pages, files, export, rating API) share the Host, Origin
and CSRF checks; split, those checks would be spread over several modules.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import re
import secrets
import sys
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from rs5m.browse import pages
from rs5m.browse.index import (
    INDEX_PATH,
    SCORE_FIELDS,
    UID_PATTERN,
    RunIndex,
    SampleFilter,
    StaleFileError,
    refresh_index,
    sniff_image_type,
)
from rs5m.browse.ratings import RATINGS_PATH, SCORE_NAMES, RatingError, RatingStore, parse_score
from rs5m.ledger import read_stats

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CSRF_COOKIE = "rs5m_csrf"
MAX_BODY = 64 * 1024
PAGE_SIZE = 24
MAX_PAGE_SIZE = 200
ASSETS = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
# Files the /files route may serve: the run's own outputs under results/, nothing else; and of
# those neither the app's own state (the index under results/browse/, the ratings database with
# rater names and the CSRF secret) nor its SQLite side files.
FILES_ROOT = "results"
FILES_HIDDEN_DIRS = ("results/browse",)
SQLITE_SIDE_SUFFIXES = ("", "-journal", "-wal", "-shm")

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    (
        "Content-Security-Policy",
        "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
]


class HTTPError(Exception):
    def __init__(self, status: int, message: str = ""):
        super().__init__(message)
        self.status = status
        self.message = message or HTTPStatus(status).phrase


@dataclass
class Response:
    body: bytes | str
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def redirect(location: str) -> Response:
    # 303 after a form post: a reload of the next page never posts the form again.
    return Response(b"", 303, "text/plain", [("Location", location)])


class Request:
    def __init__(self, environ: dict):
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        # WSGI hands PATH_INFO over as latin-1 decoded bytes; the URL itself is utf-8.
        self.path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", errors="replace") or "/"
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # noqa: BLE001 - a malformed Cookie header is the client's problem, not a 500
            cookie = SimpleCookie()
        token = cookie[CSRF_COOKIE].value if CSRF_COOKIE in cookie else ""
        self.new_csrf_cookie = not re.fullmatch(r"[0-9a-f]{64}", token)
        self.csrf_cookie = secrets.token_hex(32) if self.new_csrf_cookie else token
        self._form: dict[str, str] | None = None

    @property
    def host(self) -> str:
        raw = self.environ.get("HTTP_HOST") or self.environ.get("SERVER_NAME", "")
        return _host_name(raw)

    def form(self) -> dict[str, str]:
        if self._form is None:
            content_type = self.environ.get("CONTENT_TYPE", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                raise HTTPError(415, "forms are posted as application/x-www-form-urlencoded")
            try:
                length = int(self.environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                raise HTTPError(400, "bad Content-Length") from None
            if length > MAX_BODY:
                raise HTTPError(413)
            body = self.environ["wsgi.input"].read(length).decode("utf-8", errors="replace") if length > 0 else ""
            self._form = {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}
        return self._form

    def int_arg(self, name: str, default: int | None, low: int | None = None, high: int | None = None) -> int | None:
        value = self.query.get(name, "")
        if value == "":
            return default
        if not re.fullmatch(r"-?\d{1,9}", value):
            raise HTTPError(400, f"{name} must be a whole number")
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise HTTPError(400, f"{name} must be within {low}..{high}")
        return number

    def float_arg(self, name: str) -> float | None:
        value = self.query.get(name, "").strip()
        if value == "":
            return None
        try:
            number = float(value)
        except ValueError:
            raise HTTPError(400, f"{name} must be a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise HTTPError(400, f"{name} must be a finite number")
        return number


def _host_name(raw: str) -> str:
    raw = raw.strip().lower()
    if raw.startswith("["):
        return raw[1 : raw.find("]")] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw


class BrowseApp:
    """The WSGI callable for one run folder."""

    def __init__(
        self,
        run_dir: str | Path,
        index_db: str | Path | None = None,
        ratings_db: str | Path | None = None,
        allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS,
        reindex: bool = False,
        log=sys.stderr,
    ):
        self.run_dir = Path(run_dir).resolve()
        if not self.run_dir.is_dir():
            raise FileNotFoundError(f"run folder {self.run_dir} does not exist")
        self.log = log
        index_db = Path(index_db) if index_db else self.run_dir / INDEX_PATH
        self.refresh = refresh_index(self.run_dir, index_db, rebuild=reindex)
        self.index = RunIndex(self.run_dir, index_db)
        ratings_path = Path(ratings_db) if ratings_db else self.run_dir / RATINGS_PATH
        self.ratings = RatingStore(ratings_path)
        self.hidden_files = {
            Path(f"{p.resolve()}{suffix}") for p in (ratings_path, Path(index_db)) for suffix in SQLITE_SIDE_SUFFIXES
        }
        self.hidden_dirs = [(self.run_dir / d).resolve() for d in FILES_HIDDEN_DIRS]
        # The Origin a form post may carry: http://<allowed host>:<port> (set by the server once bound).
        self.port: int | None = None
        self.secret = self.ratings.secret()
        self.allowed_hosts = allowed_hosts
        self.ledger, self.ledger_errors = self._read_ledger()
        self.routes = [
            ("GET", r"/", self.overview),
            ("GET", r"/samples", self.samples),
            ("GET", r"/sample/(?P<uid>[^/]+)", self.sample),
            ("GET", r"/image/(?P<uid>[^/]+)", self.sample_image),
            ("GET", r"/download-image/(?P<uid>[^/]+)", self.download_image),
            ("GET", r"/dropped", self.dropped),
            ("GET", r"/files/(?P<rel>.+)", self.files),
            ("GET", r"/assets/(?P<name>[^/]+)", self.asset),
            ("GET", r"/rate", self.rate_start),
            ("POST", r"/rate", self.rate_open),
            ("GET", r"/rate/(?P<session_id>\d{1,9})", self.rate_page),
            ("POST", r"/rate/(?P<session_id>\d{1,9})", self.rate_save),
            ("GET", r"/export\.csv", self.export_csv),
            ("GET", r"/summary", self.summary),
        ]

    def _read_ledger(self):
        entries, errors = [], []
        for path in sorted((self.run_dir / "results").glob("**/*.stats.json")):
            try:
                for entry in read_stats([path]):
                    entries.append((path.relative_to(self.run_dir).as_posix(), entry))
            except (ValueError, KeyError, TypeError) as error:
                errors.append(f"{path.relative_to(self.run_dir).as_posix()}: {error}")
        return entries, errors

    # -- WSGI plumbing -------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPError as error:
            response = Response(pages.error_page(error.status, error.message), error.status)
        except Exception:  # noqa: BLE001 - one broken request must not stop the server
            traceback.print_exc(file=self.log)
            response = Response(pages.error_page(500, "internal error (see the server log)"), 500)
        headers = [("Content-Type", response.content_type), *SECURITY_HEADERS, *response.headers]
        if request.new_csrf_cookie and response.content_type.startswith("text/html"):
            headers.append(("Set-Cookie", f"{CSRF_COOKIE}={request.csrf_cookie}; Path=/; HttpOnly; SameSite=Strict"))
        body = response.body.encode("utf-8") if isinstance(response.body, str) else response.body
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [body] if request.method != "HEAD" else [b""]

    def dispatch(self, request: Request) -> Response:
        if self.allowed_hosts is not None and request.host not in self.allowed_hosts:
            # A page on another site that rebinds its DNS name to 127.0.0.1 arrives with its own Host.
            raise HTTPError(400, "unexpected Host header")
        if "\x00" in request.path:
            raise HTTPError(400, "bad path")
        method = "GET" if request.method == "HEAD" else request.method
        allowed = []
        for route_method, pattern, handler in self.routes:
            match = re.fullmatch(pattern, request.path)
            if match:
                if route_method == method:
                    if method == "POST":
                        self.check_csrf(request)
                    return handler(request, **match.groupdict())
                allowed.append(route_method)
        if allowed:
            return Response(pages.error_page(405, "method not allowed"), 405, headers=[("Allow", ", ".join(allowed))])
        raise HTTPError(404, "no such page")

    def csrf_token(self, request: Request) -> str:
        return hmac.new(self.secret, request.csrf_cookie.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, request: Request) -> None:
        origin = request.environ.get("HTTP_ORIGIN")
        if origin and origin != "null" and self.allowed_hosts is not None:
            if not self.origin_allowed(origin, request):
                raise HTTPError(403, "cross-origin form post refused")
        sent = request.form().get("csrf_token", "")
        if request.new_csrf_cookie or not hmac.compare_digest(sent, self.csrf_token(request)):
            raise HTTPError(403, "missing or wrong CSRF token: reload the page and try again")

    def origin_allowed(self, origin: str, request: Request) -> bool:
        """The whole scheme://host:port of the Origin: http, an allowed host, and this server's port
        (the one bound; without a server, the port of the request's own Host header)."""
        match = re.fullmatch(r"http://(\[[0-9a-fA-F:.]+\]|[^/:\[\]]+)(?::(\d{1,5}))?", origin.strip())
        if not match or _host_name(match.group(1)) not in self.allowed_hosts:
            return False
        port = int(match.group(2)) if match.group(2) else 80
        if self.port is not None:
            return port == self.port
        raw = (request.environ.get("HTTP_HOST") or "").strip()
        own = re.search(r":(\d{1,5})$", raw) if not raw.endswith("]") else None
        return port == (int(own.group(1)) if own else 80)

    def html(self, request: Request, title: str, body: str, status: int = 200) -> Response:
        return Response(pages.layout(title, body, self.run_dir), status)

    # -- browse ----------------------------------------------------------------------------------
    def overview(self, request: Request) -> Response:
        facets = self.index.facets()
        stats_dir = self.run_dir / "results" / "stats"
        funnel_rows = pages.read_csv_rows(stats_dir / "funnel.csv")
        figures = (
            sorted(p.relative_to(self.run_dir).as_posix() for p in stats_dir.glob("*.png"))
            if stats_dir.is_dir()
            else []
        )
        stat_files = (
            sorted(p.relative_to(self.run_dir).as_posix() for p in stats_dir.glob("*") if p.is_file())
            if stats_dir.is_dir()
            else []
        )
        body = pages.overview(facets, self.index.drop_counts(), funnel_rows, figures, stat_files, self.refresh)
        return self.html(request, "Overview", body)

    def sample_filter(self, request: Request) -> SampleFilter:
        score_field = request.query.get("score", "") or "clip_score"
        if score_field not in SCORE_FIELDS:
            raise HTTPError(400, f"score must be one of {', '.join(SCORE_FIELDS)}")
        for name in ("split", "subset", "source", "keyword", "q"):
            if len(request.query.get(name, "")) > 200:
                raise HTTPError(400, f"{name} is too long")
        return SampleFilter(
            split=request.query.get("split") or None,
            subset=request.query.get("subset") or None,
            source=request.query.get("source") or None,
            keyword=request.query.get("keyword") or None,
            text=request.query.get("q") or None,
            score_field=score_field,
            score_min=request.float_arg("min"),
            score_max=request.float_arg("max"),
        )

    def samples(self, request: Request) -> Response:
        filters = self.sample_filter(request)
        page = request.int_arg("page", 1, 1, 10**9)
        per = request.int_arg("per", PAGE_SIZE, 1, MAX_PAGE_SIZE)
        total, rows = self.index.samples(filters, per, (page - 1) * per)
        query = {k: v for k, v in request.query.items() if k != "page" and v}
        body = pages.sample_list(self.index.facets(), request.query, rows, total, page, per, query)
        return self.html(request, "Samples", body)

    def sample(self, request: Request, uid: str) -> Response:
        sample = self.index.sample(uid) if UID_PATTERN.fullmatch(uid) else None
        if sample is None:
            raise HTTPError(404, "no sample with this uid")
        return self.html(request, f"Sample {uid}", pages.sample_detail(sample))

    def _image_response(self, ref) -> Response:
        if ref is None:
            raise HTTPError(404, "no image for this uid")
        try:
            data = self.index.image_bytes(ref)
        except (StaleFileError, FileNotFoundError):
            raise HTTPError(
                410, "the shard changed or was removed since it was indexed; restart `rs5m browse`"
            ) from None
        if len(data) != ref.size:
            raise HTTPError(410, "the shard changed since it was indexed; restart `rs5m browse`")
        return Response(data, 200, sniff_image_type(data), [("Cache-Control", "private, max-age=3600")])

    def sample_image(self, request: Request, uid: str) -> Response:
        return self._image_response(self.index.sample_image(uid) if UID_PATTERN.fullmatch(uid) else None)

    def download_image(self, request: Request, uid: str) -> Response:
        return self._image_response(self.index.download_image(uid) if UID_PATTERN.fullmatch(uid) else None)

    def dropped(self, request: Request) -> Response:
        args = {name: request.query.get(name) or None for name in ("stage", "reason", "source")}
        if any(v and len(v) > 200 for v in args.values()):
            raise HTTPError(400, "filter value too long")
        with_image = request.query.get("with_image", "") in ("1", "on", "true")
        page = request.int_arg("page", 1, 1, 10**9)
        per = request.int_arg("per", PAGE_SIZE, 1, MAX_PAGE_SIZE)
        total, rows = self.index.drops(args["stage"], args["reason"], args["source"], with_image, per, (page - 1) * per)
        query = {k: v for k, v in request.query.items() if k != "page" and v}
        body = pages.dropped(
            self.index.drop_counts(), self.ledger, self.ledger_errors, args, with_image, rows, total, page, per, query
        )
        return self.html(request, "Dropped", body)

    def files(self, request: Request, rel: str) -> Response:
        root = (self.run_dir / FILES_ROOT).resolve()
        if rel.startswith(("/", "\\")) or "\\" in rel or any(part in ("..", "") for part in rel.split("/")):
            raise HTTPError(404, "no such file")
        # Resolving follows symlinks, so a link inside results/ that points elsewhere is refused too.
        try:
            path = (self.run_dir / rel).resolve()
            if (
                not path.is_relative_to(root)
                or path in self.hidden_files
                or any(path.is_relative_to(d) for d in self.hidden_dirs)
                or not path.is_file()
            ):
                raise HTTPError(404, "no such file")
            data = path.read_bytes()
        except OSError:  # a name too long for the file system, a file deleted meanwhile: not there
            raise HTTPError(404, "no such file") from None
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or path.suffix in (".md", ".csv", ".json", ".tsv", ".log"):
            # Shown as text, never rendered as a page of this origin.
            content_type = "text/plain; charset=utf-8"
        return Response(data, 200, content_type)

    def asset(self, request: Request, name: str) -> Response:
        if name not in ASSETS:
            raise HTTPError(404, "no such asset")
        data = resources.files("rs5m.browse").joinpath("assets", name).read_bytes()
        return Response(data, 200, ASSETS[name], [("Cache-Control", "no-cache")])

    # -- rate ------------------------------------------------------------------------------------
    def rate_start(self, request: Request) -> Response:
        body = pages.rate_start(self.ratings.sessions(), self.csrf_token(request), "")
        return self.html(request, "Rate", body)

    def rate_open(self, request: Request) -> Response:
        form = request.form()
        size_text = form.get("size", "").strip() or "500"
        try:
            if not size_text.isdigit():
                raise RatingError("the session size must be a whole number")
            session = self.ratings.open_session(
                form.get("rater", ""), form.get("seed", ""), int(size_text), self.index.validation_uids()
            )
        except RatingError as error:
            body = pages.rate_start(self.ratings.sessions(), self.csrf_token(request), str(error))
            return self.html(request, "Rate", body, 400)
        return redirect(f"/rate/{session.id}")

    def _session(self, session_id: str):
        session = self.ratings.session(int(session_id))
        if session is None:
            raise HTTPError(404, "no such rating session")
        return session

    def rate_page(self, request: Request, session_id: str) -> Response:
        session = self._session(session_id)
        items = self.ratings.items(session.id)
        pos = request.int_arg("pos", None, 0, len(items) - 1)
        if pos is None:
            pos = next((item["pos"] for item in items if item["relevance_detail"] is None), None)
        rated = sum(item["relevance_detail"] is not None for item in items)
        if pos is None:
            return self.html(request, "Rate", pages.rate_done(session, rated, len(items)))
        item = items[pos]
        sample = self.index.sample(item["uid"])
        body = pages.rate_page(session, item, sample, rated, len(items), self.csrf_token(request))
        return self.html(request, "Rate", body)

    def rate_save(self, request: Request, session_id: str) -> Response:
        session = self._session(session_id)
        form = request.form()
        uid = form.get("uid", "")
        try:
            scores = {name: parse_score(form.get(name), name) for name in SCORE_NAMES}
        except RatingError as error:
            raise HTTPError(400, str(error)) from None
        sample = self.index.sample(uid) if UID_PATTERN.fullmatch(uid) else None
        if sample is None:
            raise HTTPError(400, "unknown sample")
        try:
            self.ratings.rate(session.id, uid, sample, scores)
        except RatingError as error:
            raise HTTPError(400, str(error)) from None
        return redirect(f"/rate/{session.id}")

    def _rating_scope(self, request: Request) -> tuple[int | None, str | None]:
        session_id = request.int_arg("session", None, 1, 10**9)
        rater = request.query.get("rater") or None
        if rater and len(rater) > 100:
            raise HTTPError(400, "rater name too long")
        return session_id, rater

    def export_csv(self, request: Request) -> Response:
        session_id, rater = self._rating_scope(request)
        name = "ratings" + (f"_session{session_id}" if session_id else "") + (f"_{rater}" if rater else "")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        exact = request.query.get("format", "") == "exact"  # the authors' format, captions unguarded
        return Response(
            self.ratings.export_csv(session_id, rater, exact),
            200,
            "text/csv; charset=utf-8",
            [("Content-Disposition", f'attachment; filename="{name}.csv"')],
        )

    def summary(self, request: Request) -> Response:
        session_id, rater = self._rating_scope(request)
        scope = urlencode({k: v for k, v in (("session", session_id), ("rater", rater)) if v})
        body = pages.summary(self.ratings.summary(session_id, rater), self.ratings.sessions(), scope)
        return self.html(request, "Summary", body)
