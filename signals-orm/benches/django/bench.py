#!/usr/bin/env python3
"""Django's side of the signals benchmark: workloads 2, 4 and 5 on SQLite.

Creates a virtual environment of its own (``--venv``), installs the newest Django that pip
can install for this interpreter into it, and re-runs itself there. Each backend runs in a
child process with its own Django settings:

* ``sqlite-memory``: ``NAME = ":memory:"``;
* ``sqlite-file``: a new file per run, ``PRAGMA journal_mode=WAL`` (synchronous stays at
  SQLite's default, FULL, as with sqlx), foreign keys on (Django's default, and sqlx's).

Both use ``transaction_mode = "IMMEDIATE"``, so ``atomic()`` issues ``BEGIN IMMEDIATE`` as the
Rust ORM does. Tables come from ``benches/schema.sql``, the Rust side's schema. Receivers are
the Rust side's: a no-op ``post_save``, a ``post_save`` creating a Profile, a ``pre_save``
capitalizing the name, a no-op ``post_delete``, a no-op ``m2m_changed``.

Prints one JSON line on stdout: ``{"django": version, "python": version, "results":
{backend: {workload: [seconds per repetition]}}}``, or ``{"error": why}``; progress goes to
stderr. ``cargo bench -p signals-orm --bench performance`` runs it and reads that line.

Standalone: ``python3 signals-orm/benches/django/bench.py --saves 2000 --posts 500``.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCHEMA = HERE.parent / "schema.sql"
BACKENDS = ("sqlite-memory", "sqlite-file")
RECEIVERS = ("none", "noop", "profile", "capitalize")


def log(message):
    print(message, file=sys.stderr, flush=True)


def fail(why):
    print(json.dumps({"error": why}), flush=True)
    sys.exit(1)


def arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=20_000)
    parser.add_argument("--posts", type=int, default=5_000)
    parser.add_argument("--tags", type=int, default=5)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    parser.add_argument(
        "--venv", type=Path, default=HERE.parents[2] / "target" / "tmp" / "django-venv"
    )
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    return parser.parse_args()


# ---- the virtual environment ---------------------------------------------------------------


def in_venv(venv):
    return Path(sys.prefix).resolve() == venv.resolve()


def bootstrap(args):
    """Creates the venv, installs Django with pip, and re-runs this script inside it."""
    python = args.venv / "bin" / "python"
    if not python.exists():
        log(f"django: creating a virtual environment in {args.venv}")
        created = subprocess.run([sys.executable, "-m", "venv", str(args.venv)])
        if created.returncode != 0:
            fail(f"`{sys.executable} -m venv {args.venv}` failed")
    log("django: pip install --upgrade django")
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--upgrade",
         "--disable-pip-version-check", "django"],
        stdout=sys.stderr,
    )
    if pip.returncode != 0:
        has_django = subprocess.run([str(python), "-c", "import django"]).returncode == 0
        if not has_django:
            fail("pip could not install Django from PyPI (see the log above)")
        log("django: pip failed; using the Django already in the virtual environment")
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


# ---- one backend, in a child process ---------------------------------------------------------


def database_file(args):
    return args.dir / "django.db"


def remove_files(path):
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def configure(args):
    import django
    from django.conf import settings

    if args.child == "sqlite-memory":
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    else:
        database = {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(database_file(args)),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL",
                "timeout": 30,
            },
        }
    sys.path.insert(0, str(HERE))
    settings.configure(
        DEBUG=False,
        INSTALLED_APPS=["djbench"],
        DATABASES={"default": database},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
    )
    django.setup()


def bulk_insert(table, column, prefix, count):
    """The Rust side's setup statement: `count` rows `{prefix} 1`..."""
    return (
        f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count}) "
        f"INSERT INTO {table} ({column}) SELECT '{prefix} ' || x FROM n"
    )


def run_backend(args):
    configure(args)
    from django.db import connection, transaction
    from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

    from djbench.models import Post, Profile, Tag, User

    schema = SCHEMA.read_text().replace("{serial}", "INTEGER PRIMARY KEY")

    def fresh():
        """An empty database: a new file, or (in memory) the tables dropped and made again."""
        if args.child == "sqlite-file":
            connection.close()
            remove_files(database_file(args))
        connection.ensure_connection()
        raw = connection.connection
        raw.executescript(
            "DROP TABLE IF EXISTS post_tags; DROP TABLE IF EXISTS posts; "
            "DROP TABLE IF EXISTS tags; DROP TABLE IF EXISTS profiles; "
            "DROP TABLE IF EXISTS users;"
        )
        raw.executescript(schema)

    def setup_sql(sql):
        with connection.cursor() as cursor:
            cursor.execute(sql)

    def count(table):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            return cursor.fetchone()[0]

    # The receivers, as on the Rust side.
    def noop_post_save(sender, **kwargs):
        pass

    def create_profile(sender, instance, created, **kwargs):
        if created:
            Profile.objects.create(user_id=instance.pk, bio="")

    def capitalize_name(sender, instance, **kwargs):
        instance.name = instance.name.capitalize()

    def noop_post_delete(sender, **kwargs):
        pass

    def noop_m2m_changed(sender, **kwargs):
        pass

    receivers = {
        "none": None,
        "noop": (post_save, noop_post_save),
        "profile": (post_save, create_profile),
        "capitalize": (pre_save, capitalize_name),
    }

    def saves():
        with transaction.atomic():
            for i in range(args.saves):
                User(name=f"user {i}").save()

    results = {}

    def measure(key, prepare, work, check):
        runs = []
        for _ in range(args.reps):
            fresh()
            prepared = prepare()
            start = time.perf_counter()
            work(prepared)
            runs.append(time.perf_counter() - start)
            del prepared
            check()
        results[key] = runs
        ops = args.posts if key == "m2m-add" else args.saves
        median = sorted(runs)[len(runs) // 2]
        log(f"  django {args.child:<14} {key:<16} {ops / median:>10,.0f} ops/s")

    # Workload 2: saves in one transaction, with each receiver configuration.
    for name in RECEIVERS:
        connected = receivers[name]
        if connected:
            connected[0].connect(connected[1], sender=User)

        def check(name=name):
            assert count("users") == args.saves
            assert count("profiles") == (args.saves if name == "profile" else 0)
            first = User.objects.order_by("id").first().name
            assert first == ("User 0" if name == "capitalize" else "user 0"), first

        measure(f"save-{name}", lambda: None, lambda _: saves(), check)
        if connected:
            connected[0].disconnect(connected[1], sender=User)

    # Workload 4: deletes one by one in one transaction, a no-op post_delete receiver.
    def users():
        setup_sql(bulk_insert("users", "name", "user", args.saves))
        return list(User.objects.order_by("id"))

    def deletes(users):
        with transaction.atomic():
            for user in users:
                user.delete()

    def all_deleted():
        assert count("users") == 0

    post_delete.connect(noop_post_delete, sender=User)
    measure("delete", users, deletes, all_deleted)
    post_delete.disconnect(noop_post_delete, sender=User)

    # Workload 5: add of the tags to each post in one transaction, a no-op m2m_changed receiver.
    def posts_and_tags():
        setup_sql(bulk_insert("tags", "name", "tag", args.tags))
        setup_sql(bulk_insert("posts", "title", "post", args.posts))
        posts = list(Post.objects.order_by("id"))
        tags = list(Tag.objects.order_by("id").values_list("id", flat=True))
        return posts, tags

    def adds(prepared):
        posts, tags = prepared
        with transaction.atomic():
            for post in posts:
                post.tags.add(*tags)

    def links_made():
        assert count("post_tags") == args.posts * args.tags

    m2m_changed.connect(noop_m2m_changed, sender=Post.tags.through)
    measure("m2m-add", posts_and_tags, adds, links_made)
    m2m_changed.disconnect(noop_m2m_changed, sender=Post.tags.through)

    if args.child == "sqlite-file":
        connection.close()
        remove_files(database_file(args))
    import django

    print(json.dumps({"django": django.get_version(), "results": results}), flush=True)


# ---- the parent: every backend ---------------------------------------------------------------


def main():
    args = arguments()
    if args.child:
        run_backend(args)
        return
    if not in_venv(args.venv):
        bootstrap(args)  # does not return
    args.dir.mkdir(parents=True, exist_ok=True)
    results = {}
    version = None
    for backend in BACKENDS:
        child = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:], "--child", backend],
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if child.returncode != 0 or not lines:
            fail(f"the Django benchmark failed on {backend} (exit {child.returncode})")
        out = json.loads(lines[-1])
        version = out["django"]
        results[backend] = out["results"]
    print(
        json.dumps(
            {"django": version, "python": platform.python_version(), "results": results}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
