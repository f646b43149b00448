"""The embedded demo: small, deterministic PUB11 metadata in all eleven native formats.

Writes one folder per source under the demo root; its image URLs are served by `rs5m.demo.web`.
Rows mix remote-sensing and other captions, URL repeats, near-duplicate images and broken rows.

Size: one writer per native format of the eleven sources, each a few lines, plus the bad rows;
they share the row generator and stay side by side so the formats can be compared.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rs5m.pub11.sources import WIT_COLUMNS, YFCC100M_COLUMNS

DEMO_HOST = "http://demo.rs5m.test"

# Files the demo writes, relative to its root; config/config.yaml names the same paths.
DEMO_FILES = {
    "laion2b": ["laion2b/part-00000.parquet", "laion2b/part-00001.parquet"],
    "coyo700m": ["coyo700m/part-00000.parquet"],
    "laioncoco": ["laioncoco/part-00000.parquet"],
    "laion400m": ["laion400m/part-00000.parquet", "laion400m/part-00001.parquet"],
    "wit": ["wit/wit_v1.train.all-00000-of-00010.tsv.gz"],
    "yfcc15m": ["yfcc15m/yfcc100m_dataset.tsv"],
    "cc12m": ["cc12m/cc12m.tsv"],
    "redcaps": ["redcaps/annotations/earthporn_2020.json", "redcaps/annotations/itookapicture_2019.json"],
    "cc3m": ["cc3m/Train_GCC-training.tsv"],
    "sbu": ["sbu/sbu-captions-all.json"],
    "vg": ["vg/image_data.json"],
}
EXTRA_FILES = ["vg/region_descriptions.json", "cc3m/Image_Labels_Subset_Train_GCC-Labels-training.tsv"]

RS_CAPTIONS = [
    "Satellite image of {place} showing farmland and roads",
    "aerial view of the {place} harbour at low tide",
    "Aerial Photography: {place} from above",
    "Remote sensing scene of {place}, Sentinel-2 true colour",
    "{place} seen on Google Earth",
    "LANDSAT 8 mosaic over {place}",
    "an aerial image of a stadium near {place}",
    "WorldView-3 satellite photo of {place} airport",
    "Earth observation data: floods near {place}",
    "USGS aerial map of {place} county",
    "spaceborne imagery of {place} glaciers",
    "NAIP aerial scan, {place} 2019",
]
OTHER_CAPTIONS = [
    "A cat sleeping on a sofa in {place}",
    "Wedding dress, lace, size 10",
    "Street food market in {place} at night",
    "Vintage car show {place} 2018",
    "Portrait of a young man smiling",
    "Hiking boots for men, waterproof",
    "View from the hotel room in {place}",
    "Birthday cake with candles",
    "Space heater for small rooms",
    "satellite dish installation service in {place}",
]
PLACES = ["Paris", "Lagos", "Sydney", "Zürich", "São Paulo", "Nairobi", "Reykjavík", "Osaka", "Lima", "Toronto"]
# Latitude/longitude of the places above (YFCC rows carry them).
COORDINATES = [
    (48.86, 2.35),
    (6.52, 3.38),
    (-33.87, 151.21),
    (47.38, 8.54),
    (-23.55, -46.63),
    (-1.29, 36.82),
    (64.15, -21.94),
    (34.69, 135.5),
    (-12.05, -77.04),
    (43.65, -79.38),
]
# Downloads the demo server answers badly or oddly (rs5m.demo.web): each must end as a named
# reason in the ledger, or as a kept image after conversion.
BAD_PATHS = [
    "/bad/corrupt.jpg",
    "/bad/truncated.jpg",
    "/bad/empty.jpg",
    "/bad/html.jpg",
    "/bad/huge.png",
    "/bad/cmyk.jpg",
    "/bad/16bit.png",
    "/bad/palette.png",
    "/bad/alpha.png",
    "/bad/animated.gif",
    "/bad/exif-rotated.jpg",
    "/bad/tiny.jpg",
    "/bad/noai.jpg",
    "/bad/404.jpg",
    "/bad/500.jpg",
    "/bad/429.jpg",
    "/bad/stall.jpg",
    "/bad/drop.jpg",
    "/bad/redirect-loop.jpg",
    "/flaky/rs/7000.jpg",
]
# URLs the safety filter must refuse before any download (they never reach the network).
UNSAFE_URLS = [
    "http://169.254.169.254/latest/meta-data/aerial-view.jpg",
    "http://10.1.2.3/satellite-image.jpg",
    "http://localhost/aerial-photo.jpg",
    "http://[::1]/aerial-map.jpg",
    "http://2130706433/satellite-map.jpg",
    "file:///etc/passwd?aerial-view",
]


class DemoRows:
    """A seeded stream of (url, caption, is_rs) rows shared by all sources."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.next_image = {"rs": 0, "photo": 0}

    def image_url(self, kind: str) -> str:
        number = self.next_image[kind]
        self.next_image[kind] += 1
        return f"{DEMO_HOST}/img/{kind}/{number}.jpg"

    def caption(self, is_rs: bool) -> str:
        template = self.rng.choice(RS_CAPTIONS if is_rs else OTHER_CAPTIONS)
        return template.format(place=self.rng.choice(PLACES))

    def rows(self, count: int, rs_share: float = 0.5) -> list[tuple[str, str, bool]]:
        out = []
        for _ in range(count):
            is_rs = self.rng.random() < rs_share
            # One RS caption in eight points at an ordinary photo: the outlier stage should drop it.
            kind = "rs" if is_rs and self.rng.random() > 0.125 else "photo"
            out.append((self.image_url(kind), self.caption(is_rs), is_rs))
        return out


def _write_parquet(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _laion(rows, rng) -> pa.Table:
    return pa.table(
        {
            **_url_text(rows),
            "WIDTH": pa.array([rng.choice([256, 320, 512, None]) for _ in rows], pa.int64()),
            "HEIGHT": pa.array([rng.choice([256, 240, 512, None]) for _ in rows], pa.int64()),
            "similarity": [round(rng.uniform(0.28, 0.4), 4) for _ in rows],
            "hash": [rng.getrandbits(62) for _ in rows],
            "punsafe": [round(rng.random() * 0.1, 4) for _ in rows],
            "pwatermark": [round(rng.random() * 0.5, 4) for _ in rows],
        }
    )


class _Inputs:
    """What every source's writer shares: the root, the seeded generators, the row count and the
    list of files written (in the order they are written)."""

    def __init__(self, root: Path, seed: int, rows_per_source: int):
        self.root = root
        self.rng = random.Random(seed)
        self.stream = DemoRows(seed)
        self.n = rows_per_source
        self.written: list[Path] = []

    def out(self, rel: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(path)
        return path


def _url_text(rows, url: str = "URL", text: str = "TEXT") -> dict[str, list]:
    """The URL and caption columns of (url, caption, is_rs) rows, under a format's column names."""
    return {url: [u for u, _, _ in rows], text: [c for _, c, _ in rows]}


def _write_laion2b(inputs: _Inputs) -> list[tuple]:
    """Two parts; the second repeats one URL of the first (a URL duplicate across files) and one URL
    inside itself; broken rows: null URL, ftp URL, null caption. Returns the first part's rows."""
    stream, n = inputs.stream, inputs.n
    part0 = stream.rows(n)
    part1 = stream.rows(n - 5) + [
        part0[0],
        part0[0],
        (None, "aerial view of nowhere", True),
        ("ftp://files.example/aerial.jpg", "aerial photo over an ftp server", True),
        (stream.image_url("rs"), None, True),
    ]
    _write_parquet(inputs.out(DEMO_FILES["laion2b"][0]), _laion(part0, inputs.rng))
    _write_parquet(inputs.out(DEMO_FILES["laion2b"][1]), _laion(part1, inputs.rng))
    return part0


def _write_coyo700m(inputs: _Inputs, laion2b: list[tuple]) -> None:
    """Lower-case columns; a near-duplicate image under a second URL (?copy=1)."""
    rng = inputs.rng
    coyo = inputs.stream.rows(inputs.n)
    first_rs = next(u for u, _, rs in laion2b if rs and "/img/rs/" in u)
    coyo.append((first_rs + "?copy=1", "satellite view of the same field, re-encoded", True))
    _write_parquet(
        inputs.out(DEMO_FILES["coyo700m"][0]),
        pa.table(
            {
                "id": pa.array(range(len(coyo)), pa.int64()),
                **_url_text(coyo, "url", "text"),
                "width": pa.array([rng.choice([256, 640]) for _ in coyo], pa.int32()),
                "height": pa.array([rng.choice([256, 480]) for _ in coyo], pa.int32()),
                "image_phash": [f"{rng.getrandbits(64):016x}" for _ in coyo],
                "clip_similarity_vitb32": [round(rng.uniform(0.2, 0.4), 4) for _ in coyo],
                "aesthetic_score_laion_v2": [round(rng.uniform(3, 7), 3) for _ in coyo],
            }
        ),
    )


def _write_laioncoco(inputs: _Inputs, laion2b: list[tuple]) -> None:
    """BLIP captions (top_caption, all_captions) match too; it also repeats a LAION-2B URL, which
    URL dedup must drop in favour of LAION-2B."""
    stream = inputs.stream
    coco = stream.rows(inputs.n, rs_share=0.3)
    coco.append((laion2b[1][0], laion2b[1][1], laion2b[1][2]))
    top = [stream.caption(stream.rng.random() < 0.3) for _ in coco]
    _write_parquet(
        inputs.out(DEMO_FILES["laioncoco"][0]),
        pa.table(
            {
                **_url_text(coco),
                "top_caption": top,
                "all_captions": [[t, stream.caption(False)] for t in top],
                "all_similarities": [[0.31, 0.29] for _ in coco],
                "WIDTH": pa.array([512] * len(coco), pa.int64()),
                "HEIGHT": pa.array([384] * len(coco), pa.int64()),
                "similarity": [0.3] * len(coco),
            }
        ),
    )


def _write_laion400m(inputs: _Inputs) -> None:
    """Float sizes with nulls, and a second part that is not parquet at all."""
    rng = inputs.rng
    l400 = inputs.stream.rows(inputs.n)
    _write_parquet(
        inputs.out(DEMO_FILES["laion400m"][0]),
        pa.table(
            {
                "SAMPLE_ID": pa.array(range(len(l400)), pa.int64()),
                **_url_text(l400),
                "HEIGHT": pa.array([rng.choice([256.0, None]) for _ in l400], pa.float64()),
                "WIDTH": pa.array([rng.choice([256.0, None]) for _ in l400], pa.float64()),
                "LICENSE": ["?"] * len(l400),
                "NSFW": ["UNLIKELY"] * len(l400),
                "similarity": [0.31] * len(l400),
            }
        ),
    )
    inputs.out(DEMO_FILES["laion400m"][1]).write_bytes(b"PAR1 this file was cut off during download")


def _write_wit(inputs: _Inputs) -> None:
    """Gzipped TSV with the 17 official columns; non-English rows are dropped by language."""
    lines = ["\t".join(WIT_COLUMNS)]
    for i, (url, caption, _) in enumerate(inputs.stream.rows(inputs.n)):
        language = "en" if i % 4 else "de"
        fields = [
            language,
            f"https://en.wikipedia.org/wiki/Page_{i}",
            url,
            f"Page {i}",
            "",
            "",
            caption if i % 2 else "",
            "" if i % 2 else caption,
            "",
            "image/jpeg",
            "512",
            "512",
            "true",
            "true",
            "false",
            "",
            "",
        ]
        lines.append("\t".join(fields))
    with gzip.GzipFile(inputs.out(DEMO_FILES["wit"][0]), "wb", mtime=0) as handle:
        handle.write(("\n".join(lines) + "\n").encode("utf-8"))


def _write_yfcc15m(inputs: _Inputs) -> None:
    """YFCC100M records: headerless, 25 columns, form-encoded title and description, geotags."""
    yfcc_lines = []
    for i, (url, caption, _) in enumerate(inputs.stream.rows(inputs.n)):
        place = i % len(COORDINATES)
        # Every seventh photo has no geotag (YFCC writes empty fields): its place clause drops.
        lat, lon = ("", "") if i % 7 == 6 else COORDINATES[place]
        values = {c: "" for c in YFCC100M_COLUMNS}
        values.update(
            line_number=str(i),
            photo_id=str(1000 + i),
            photo_hash=f"{inputs.rng.getrandbits(64):016x}",
            user_id=f"{i}@N00",
            user_nickname="demo",
            date_taken=f"2012-0{1 + i % 9}-1{i % 9} 10:2{i % 6}:00.0",
            date_uploaded="1340000000",
            capture_device="Canon+EOS",
            title=caption.replace(" ", "+"),
            description="Uploaded+from+the+field+%2B+notes",
            user_tags="demo,field",
            longitude=str(lon),
            latitude=str(lat),
            accuracy="16",
            page_url=f"http://www.flickr.com/photos/demo/{1000 + i}/",
            download_url=url,
            license_name="Attribution+License",
            license_url="http://creativecommons.org/licenses/by/2.0/",
            server_id="1",
            farm_id="1",
            secret="abc",
            secret_original="def",
            extension_original="jpg",
            marker="0",
        )
        yfcc_lines.append("\t".join(values[c] for c in YFCC100M_COLUMNS))
    inputs.out(DEMO_FILES["yfcc15m"][0]).write_text("\n".join(yfcc_lines) + "\n", encoding="utf-8")


def _write_cc12m(inputs: _Inputs) -> None:
    """(url, caption), headerless; broken lines: not UTF-8, a single field, a caption too long."""
    cc12 = ["\t".join((u, c)) for u, c, _ in inputs.stream.rows(inputs.n)]
    cc12_bytes = ("\n".join(cc12) + "\n").encode("utf-8")
    cc12_bytes += b"http://demo.rs5m.test/img/rs/9999.jpg\tsatellite image \xff\xfe not utf-8\n"
    cc12_bytes += b"a line with a single field\n"
    cc12_bytes += ("http://demo.rs5m.test/img/photo/9998.jpg\t" + "aerial view " * 90_000 + "\n").encode()
    inputs.out(DEMO_FILES["cc12m"][0]).write_bytes(cc12_bytes)


def _write_cc3m(inputs: _Inputs) -> None:
    """(caption, url), headerless, and the labels file (caption, url, labels, MIDs, scores) for its
    RS rows: the three cases of the SPEC 4 rule in turn (>= 3 confident tags, fewer, none), and one
    malformed line."""
    cc3 = inputs.stream.rows(inputs.n)
    inputs.out(DEMO_FILES["cc3m"][0]).write_text(
        "\n".join("\t".join((c, u)) for u, c, _ in cc3) + "\n", encoding="utf-8"
    )
    label_scores = ("0.97,0.93,0.91,0.5", "0.5,0.95,0.3,0.92", "0.4,0.3,0.7,0.1")
    label_lines = [
        "\t".join((c, u, "aerial photography,landscape,field,sky", "/m/1,/m/2,/m/3,/m/4", label_scores[i % 3]))
        for i, (u, c, rs) in enumerate(cc3)
        if rs
    ]
    label_lines.insert(1, "a caption\thttp://demo.rs5m.test/img/rs/9997.jpg\tsky\t/m/1\tnot-a-score")
    inputs.out(EXTRA_FILES[1]).write_text("\n".join(label_lines) + "\n", encoding="utf-8")


def _write_redcaps(inputs: _Inputs) -> None:
    """One JSON object per subreddit-year with an `annotations` list."""
    for rel, subreddit in zip(DEMO_FILES["redcaps"], ("earthporn", "itookapicture")):
        annotations = [
            dict(
                image_id=f"{subreddit[:2]}{i}",
                author="demo",
                url=u,
                raw_caption=c,
                caption=c.lower(),
                subreddit=subreddit,
                score=10 + i,
                created_utc=1577836800.0 + 86400 * 37 * i,
                permalink=f"/r/{subreddit}/comments/{i}/",
                crosspost_parents=None,
            )
            for i, (u, c, _) in enumerate(inputs.stream.rows(inputs.n // 2))
        ]
        inputs.out(rel).write_text(
            json.dumps({"info": {"subreddit": subreddit, "year": 2020}, "annotations": annotations})
        )


def _write_sbu(inputs: _Inputs) -> None:
    """Column-wise lists."""
    sbu = inputs.stream.rows(inputs.n)
    inputs.out(DEMO_FILES["sbu"][0]).write_text(
        json.dumps(
            {
                "image_urls": [u for u, _, _ in sbu],
                "captions": [c for _, c, _ in sbu],
                "user_ids": [f"u{i}" for i in range(len(sbu))],
            }
        )
    )


def _write_vg(inputs: _Inputs) -> None:
    """Visual Genome: image records plus region phrases joined on image_id."""
    vg = inputs.stream.rows(inputs.n // 2)
    inputs.out(DEMO_FILES["vg"][0]).write_text(
        json.dumps(
            [
                dict(image_id=i + 1, url=u, width=800, height=600, coco_id=None, flickr_id=None)
                for i, (u, _, _) in enumerate(vg)
            ]
        )
    )
    inputs.out(EXTRA_FILES[0]).write_text(
        json.dumps(
            [
                dict(
                    id=i + 1,
                    regions=[
                        dict(region_id=10 * i + k, image_id=i + 1, phrase=p, x=0, y=0, width=10, height=10)
                        for k, p in enumerate((c, "a white cloud", "green grass"))
                    ],
                )
                for i, (_, c, _) in enumerate(vg)
            ]
        )
    )


def _append_bad_downloads(inputs: _Inputs) -> None:
    """Rows whose captions match but whose URLs the server answers badly, appended to LAION-2B's
    first part."""
    bad_urls = [DEMO_HOST + p for p in BAD_PATHS] + UNSAFE_URLS
    bad_rows = pa.table(
        {
            "URL": bad_urls,
            "TEXT": [f"aerial image test case {u.rsplit('/', 1)[-1]}" for u in bad_urls],
        }
    )
    path = inputs.root / DEMO_FILES["laion2b"][0]
    _write_parquet(path, pa.concat_tables([pq.read_table(path), bad_rows], promote_options="default"))


def write_demo_inputs(root: str | Path, seed: int, rows_per_source: int) -> list[Path]:
    """Write every demo input file under `root`; return their paths. Same seed, same bytes.

    The sources draw from one seeded row stream in this order, so the order is part of the bytes."""
    inputs = _Inputs(Path(root), seed, rows_per_source)
    laion2b = _write_laion2b(inputs)
    _write_coyo700m(inputs, laion2b)
    _write_laioncoco(inputs, laion2b)
    _write_laion400m(inputs)
    _write_wit(inputs)
    _write_yfcc15m(inputs)
    _write_cc12m(inputs)
    _write_cc3m(inputs)
    _write_redcaps(inputs)
    _write_sbu(inputs)
    _write_vg(inputs)
    _append_bad_downloads(inputs)
    return inputs.written
