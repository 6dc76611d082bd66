"""The JSON API under /api/v1. A route is as thin as a CLI command: parse, call one facade
function on the service's connection, answer exactly what `present` makes of the result.

Every body is `present.dumps(doc)` plus a newline: byte for byte what the CLI command of the
same question prints with --json (click.echo adds the same newline).
"""
from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic import ValidationError as ModelError

from .. import api, present
from ..errors import AuditError, InvalidArgument, NotFound
from .guards import token_matches
from .jobs import Job
from .service import BULK_LIMIT, MAX_TEXT, Service, depends_on, service, text

router = APIRouter(prefix="/api/v1")

FORMATS = ("auto", "csv", "parquet", "snap-higgs", "uvt", "signed-csv")


class HttpError(Exception):
    """An answer other than an AuditError's: 401, 403, 413."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def answer(doc: Any, status: int = 200) -> Response:
    return Response(present.dumps(doc) + "\n", status_code=status, media_type="application/json")


Release = Annotated[str | None, Query(description="A published version, name@version: its latest period.")]
RunRef = Annotated[str | None, Query(description="A run id or prefix, instead of a publication.")]


def from_memory(s: Service, *refs: str, run: str | None = None) -> bool:
    """Whether the published scores in memory answer at once (no handle or run to look up in
    the store, every run already loaded): then the route answers on the event loop instead of
    taking a thread."""
    return run is None and not any(r.startswith("@") for r in refs) and s.cache.ready()


def _one_of(release: str | None, run: str | None) -> tuple[str | None, str | None]:
    if release is not None and run is not None:
        raise InvalidArgument("give release or run, not both")
    return text(release, "release"), text(run, "run")


@router.get("/accounts/{ref}/score", summary="An account's score with its day, week and month change",
            description="Score, raw, rank, run and period of ACCOUNT (id or @handle) in the publication on display "
                        "now (or the latest period of `release`, or `run`), and the change since the previous "
                        "published day, week and month. CLI: `audit account REF --json`.")
async def account_score(request: Request, ref: str, release: Release = None, run: RunRef = None) -> Response:
    release, run = _one_of(release, run)
    s = service(request)
    ask = functools.partial(api.account_score, s.con, text(ref, "account"), release=release, run=run, source=s.cache)
    card = ask() if from_memory(s, ref, run=run) else await run_in_threadpool(ask)
    return answer(present.score_card_json(card))


class Bulk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: list[str] = Field(description=f"Account ids or @handles, at most {BULK_LIMIT:,}.")
    release: str | None = None
    run: str | None = None


@router.post("/scores", summary="Bulk lookup of many accounts' scores",
             description=f"Up to {BULK_LIMIT:,} ids or @handles in one publication (or `release`, `run`); unknown "
                         "ones and handles held by several accounts are listed apart. More than "
                         f"{BULK_LIMIT:,} accounts: 413. CLI: `audit lookup REF... --json`.")
async def bulk_scores(request: Request, body: Bulk) -> Response:
    if len(body.accounts) > BULK_LIMIT:
        raise HttpError(413, f"{len(body.accounts):,} accounts in one lookup; at most {BULK_LIMIT:,}")
    release, run = _one_of(body.release, body.run)
    refs = [text(a, "account") for a in body.accounts]
    s = service(request)
    ask = functools.partial(api.lookup_scores, s.con, refs, release=release, run=run, source=s.cache)
    result = ask() if from_memory(s, *refs, run=run) else await run_in_threadpool(ask)
    return answer(present.lookup_json(result))


@router.get("/accounts/{ref}/history", summary="An account's score history",
            description="Per period, as originally published (view=published) or as restated; `as_of`: what was "
                        "on display at that instant. CLI: `audit history REF [--restated] [--as-of T] --json`.")
async def history(request: Request, ref: str, view: Literal["published", "restated"] = "published",
                  as_of: str | None = None) -> Response:
    s = service(request)
    ask = functools.partial(api.history, s.con, [text(ref, "account")], restated=view == "restated",
                            as_of=text(as_of, "as_of"), source=s.cache)
    inline = as_of is None and from_memory(s, ref) and s.cache.covers(latest=view == "restated")
    return answer(present.history_json(ask() if inline else await run_in_threadpool(ask)))


@router.get("/accounts/{ref}/explain", summary="Why an account's score changed",
            description="From run (or published period) `from` to `to`; with `release`, both are periods of that "
                        "version. Answers from stored runs only (and keeps the answer until a write could change it): "
                        "when the counterfactual runs it needs are not stored, 409 names the explain job that "
                        "stores them. CLI: `audit explain REF --from A "
                        "--to B --json`.")
async def explain(request: Request, ref: str, from_: Annotated[str, Query(alias="from")], to: str,
                  release: Release = None) -> Response:
    s = service(request)
    args = (text(ref, "account"), text(from_, "from"), text(to, "to"), text(release, "release"))
    key, depends = ("explain", *args), depends_on(args[1], args[2], account=args[0])

    def ask() -> Response:
        e = api.explain(s.con, args[0], from_run=args[1], to_run=args[2], release=args[3], now=s.settings.clock(),
                        compute=False)
        return answer(present.explanation_json(e))
    return s.recall(key, depends) or await run_in_threadpool(s.remembered, key, ask, depends)


Topic = Annotated[str | None, Query(description="A topic of a topic run (e.g. of topics@1).")]


@router.get("/accounts/{ref}/topics", summary="An account's topics, best first",
            description="Its score and rank in each topic of a topic run (`run`; default: the topic run on display "
                        "now). CLI: `audit topics REF [--run R] [--top N] --json`.")
def account_topics(request: Request, ref: str, run: RunRef = None,
                   top: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> Response:
    result = api.account_topics(service(request).con, text(ref, "account"), run=text(run, "run"), top=top)
    return answer(present.account_topics_json(result))


@router.get("/accounts/{ref}/influence", summary="An account's influencers and influencees",
            description="Whose engagement adds most to its score and whose score it adds most to, in points; with "
                        "`relative`, the accounts ranked by PageRank personalised to it. CLI: `audit influence REF "
                        "--run R [--top N] [--relative] [--topic T] --json`.")
def influence(request: Request, ref: str, run: str, top: Annotated[int, Query(ge=1, le=1000)] = 10,
              relative: bool = False, topic: Topic = None) -> Response:
    result = api.influence(service(request).con, text(ref, "account"), run=text(run, "run"), top=top,
                           relative=relative, topic=text(topic, "topic"))
    return answer(present.influence_json(result))


@router.get("/accounts/{ref}/engagers", summary="Who engaged an account, with alerts",
            description="Every account that engaged it in the run's snapshot window (default: the run on display "
                        "now), with score, rank, interactions by kind, first and last time and `new`; those at or "
                        "above `min_score` are alerts. CLI: `audit engagers REF [--run R] [--since T] "
                        "[--min-score S] [--topic T] --json`.")
def engagers(request: Request, ref: str, run: RunRef = None, since: str | None = None,
             min_score: float | None = None, topic: Topic = None) -> Response:
    result = api.engagers(service(request).con, text(ref, "account"), run=text(run, "run"),
                          since=text(since, "since"), min_score=min_score, topic=text(topic, "topic"))
    return answer(present.engagers_json(result))


@router.get("/runs", summary="Every run", description="CLI: `audit runs --json`.")
def runs(request: Request) -> Response:
    return answer(present.runs_json(api.runs(service(request).con)))


@router.get("/runs/{run_id}", summary="One run", description="CLI: `audit runs RUN --json`.")
def run(request: Request, run_id: str) -> Response:
    return answer(present.run_json(api.get_run(service(request).con, text(run_id, "run"))))


@router.get("/snapshots", summary="Every snapshot", description="CLI: `audit snapshots --json`.")
def snapshots(request: Request) -> Response:
    return answer(present.snapshots_json(api.snapshots(service(request).con)))


@router.get("/algorithms", summary="Every registered algorithm version", description="CLI: `audit algorithms --json`.")
def algorithms(request: Request) -> Response:
    return answer(present.algorithms_json(api.algorithms(service(request).con)))


@router.get("/publications", summary="Every publication", description="CLI: `audit publications --json`.")
def publications(request: Request) -> Response:
    return answer(present.publications_json(api.publications(service(request).con)))


@router.get("/compare", summary="Compare two runs",
            description="CLI: `audit compare BASELINE CANDIDATE [--top N] --json` (segments are CLI only: they are "
                        "SQL).")
def compare(request: Request, baseline: str, candidate: str, top: Annotated[int, Query(ge=1, le=1000)] = 20) -> Response:
    result = api.compare(service(request).con, text(baseline, "baseline"), text(candidate, "candidate"), top=top)
    return answer(present.comparison_json(result))


@router.get("/verify", summary="Verify the log and every content hash",
            description="CLI: `audit verify --json` (re-running every run, `--rerun`, is CLI only).")
def verify(request: Request) -> Response:
    return answer(present.verification_json(api.verify(service(request).con)))


# ---------------------------------------------------------------- jobs

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


Arg = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class IngestJob(_Strict):
    op: Literal["ingest"]
    path: Arg = Field(description="A file under the service's --ingest-root (or upload one, multipart).")
    format: Literal[FORMATS] = "auto"      # type: ignore[valid-type]
    kind: Arg | None = None


class SnapshotJob(_Strict):
    op: Literal["snapshot"]
    as_of: Arg
    window: Arg | None = None
    label: Arg | None = None


class ScoreJob(_Strict):
    op: Literal["score"]
    snapshot: Arg
    algorithm: Arg


class PublishJob(_Strict):
    op: Literal["publish"]
    run: Arg
    period: Arg


class ExplainJob(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    op: Literal["explain"]
    account: Arg
    from_: Arg = Field(alias="from")
    to: Arg
    release: Arg | None = None


JobBody = TypeAdapter(Annotated[IngestJob | SnapshotJob | ScoreJob | PublishJob | ExplainJob,
                                Field(discriminator="op")])


def job_json(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "op": job.op, "args": job.args, "state": job.state,
            "submitted_at": job.submitted_at.isoformat(),
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "progress": {"steps": list(job.steps),
                         "current": job.steps[-1]["step"] if job.steps and job.state == "running" else None},
            "result": job.result, "error": job.error}


def authorize(request: Request) -> None:
    token = service(request).settings.token
    if token is None:
        raise HttpError(403, "writes are disabled: the service was started without --token-file")
    if not token_matches(request.headers.get("authorization"), token):
        raise HttpError(401, "a write needs the header Authorization: Bearer <the service's token>",
                        {"WWW-Authenticate": "Bearer"})


def _checked(args: dict[str, Any]) -> dict[str, Any]:
    for name, value in args.items():
        if isinstance(value, str) and name != "op":
            text(value, name)
    return args


def _server_file(request: Request, name: str) -> Path:
    root = service(request).settings.ingest_root
    if root is None:
        raise AuditError("this service has no ingest folder (audit serve --ingest-root DIR); upload the file "
                         "instead (multipart: op=ingest and file=@PATH)")
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InvalidArgument(f'path "{name}" is outside the ingest folder; give a path inside it')
    if not path.is_file():
        raise NotFound(f'no file "{name}" in the ingest folder')
    return path


async def _uploaded(request: Request) -> tuple[dict[str, Any], dict[str, Any], Path]:
    form = await request.form(max_files=1, max_fields=8)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise InvalidArgument("a multipart job needs op=ingest and one file field named file")
    fields = {k: v for k, v in form.items() if k != "file"}
    if any(not isinstance(v, str) for v in fields.values()):
        raise InvalidArgument("only one file, named file, may be uploaded")
    name = Path(upload.filename or "upload").name
    args = _checked({"op": fields.pop("op", ""), "name": text(name, "file name"), **fields})
    if args["op"] != "ingest":
        raise InvalidArgument('an uploaded file is ingested: give op=ingest')
    unknown = set(args) - {"op", "name", "format", "kind"}
    if unknown:
        raise InvalidArgument(f"unknown field(s) of an ingest job: {', '.join(sorted(unknown))}")
    if args.get("format", "auto") not in FORMATS:
        raise InvalidArgument(f"format {args['format']!r} is not one of {', '.join(FORMATS)}")
    folder = Path(tempfile.mkdtemp(prefix="audit-upload-"))
    path = folder / name
    with open(path, "wb") as out:
        shutil.copyfileobj(upload.file, out)
    await upload.close()
    return args, {"path": str(path)}, folder


@router.post("/jobs", status_code=202, summary="Submit a write job (bearer token)",
             description="JSON {\"op\": ingest|snapshot|score|publish|explain, and the CLI's arguments by name}, or "
                         "multipart (op=ingest, format, kind, file) to upload a file. 202 with {\"job_id\"}; "
                         "403 without --token-file, 401 with a wrong token.")
async def submit_job(request: Request) -> Response:
    authorize(request)                      # before the body is read
    s = service(request)
    kind = request.headers.get("content-type", "")
    upload = None
    if kind.startswith("multipart/form-data"):
        args, private, upload = await _uploaded(request)
    else:
        try:
            parsed = JobBody.validate_json(await request.body())
        except ModelError as exc:
            raise InvalidArgument("malformed job: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())) from None
        args = _checked(parsed.model_dump(by_alias=True, exclude_none=True))
        private = {"path": str(_server_file(request, args["path"]))} if args["op"] == "ingest" else {}
    job = s.jobs.submit(args.pop("op"), args, private=private, upload=upload)
    return answer({"job_id": job.job_id, "state": job.state}, 202)


@router.get("/jobs/{job_id}", summary="A write job's state, progress, and result or error")
def get_job(request: Request, job_id: str) -> Response:
    job = service(request).jobs.get(text(job_id, "job"))
    if job is None:
        raise NotFound(f'job "{job_id}" not found; jobs are kept in memory until the service stops')
    return answer(job_json(job))

