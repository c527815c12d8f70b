#!/usr/bin/env python3
"""Mutation testing of latent's headers: does the test suite notice a plausible bug?

Each mutant in mutants.txt (beside this script) replaces one piece of text, which must occur
exactly once in its file, by a wrong version of it. For each mutant the script applies it,
rebuilds the test programs the mutant names, runs their ctest entries and puts the file back,
byte for byte. A mutant is

  killed          a test failed (or crashed)
  timed out       a test ran past --timeout; counted as killed
  survived        every test passed: the suite did not notice the bug
  did not compile the mutated code does not build; reported apart, not counted
  skipped         its original text is no longer in the file (the code changed), or occurs more
                  than once, or a selected test already fails unmutated; not counted

The mutation score is killed / (killed + survived), timeouts included in killed.

Typical use, from the repository root (a full run takes about an hour on 2 cores):

  tests/mutation/run_mutants.py --list
  tests/mutation/run_mutants.py --only dense-bias-assign,bce-unclamped --jobs 1
  tests/mutation/run_mutants.py --keep-going

The files the selected mutants touch must be unmodified in git: the script refuses otherwise,
and it never leaves a mutated file behind (it restores on errors, Ctrl-C and SIGTERM; after a
SIGKILL the next run restores from the copy it keeps in the build directory). The build
directory's test programs hold the last mutant's code until they are rebuilt (the next build
does that: the restored header is newer), so run the ordinary suite in another build directory.
Each mutant's build and test output is in <build dir>/mutation-logs.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT_DIR = Path(__file__).resolve().parent
REPOSITORY = SCRIPT_DIR.parent.parent
MUTANT_LIST = SCRIPT_DIR / "mutants.txt"
KNOWN_KEYS = ("file", "bug", "targets", "tests", "labels", "original", "mutated")
REQUIRED_KEYS = ("file", "bug", "targets", "original", "mutated")


@dataclass
class Mutant:
    id: str
    file: str
    bug: str
    targets: list
    original: str
    mutated: str
    tests: str = ""          # a Python regex searched in the ctest names; empty: every test of the targets
    labels: list = field(default_factory=list)  # ctest labels a selected test must carry (all of them)
    line: int = 0            # where the mutant starts in mutants.txt, for messages


@dataclass
class Outcome:
    mutant: Mutant
    status: str              # killed, timed out, survived, did not compile, skipped
    detail: str = ""
    seconds: float = 0.0


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP: stop, after the file is restored."""


def parse_mutants(path):
    """The mutants of the list: blocks that start with "[id]", then "key: value" lines.

    A value is everything after "key: " up to the end of the line, kept exactly (original and
    mutated text may start with spaces). Lines starting with "#" are comments."""
    mutants, current, seen = [], None, set()

    def finish(block):
        if block is None:
            return
        missing = [key for key in REQUIRED_KEYS if key not in block["fields"]]
        if missing:
            sys.exit(f"{path}:{block['line']}: mutant '{block['id']}' lacks {', '.join(missing)}")
        values = block["fields"]
        if values["original"] == values["mutated"]:
            sys.exit(f"{path}:{block['line']}: mutant '{block['id']}' changes nothing")
        mutants.append(Mutant(id=block["id"], file=values["file"], bug=values["bug"],
                              targets=values["targets"].split(), original=values["original"],
                              mutated=values["mutated"], tests=values.get("tests", ""),
                              labels=values.get("labels", "").split(), line=block["line"]))

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.startswith("#") or not raw.strip():
            continue
        header = re.fullmatch(r"\[([A-Za-z0-9_.-]+)\]", raw.strip())
        if header:
            finish(current)
            if header.group(1) in seen:
                sys.exit(f"{path}:{number}: mutant id '{header.group(1)}' is used twice")
            seen.add(header.group(1))
            current = {"id": header.group(1), "line": number, "fields": {}}
            continue
        key, separator, value = raw.partition(": ")
        if current is None or not separator or key not in KNOWN_KEYS:
            sys.exit(f"{path}:{number}: expected '[id]' or one of {', '.join(KNOWN_KEYS)} followed by ': '")
        if key in current["fields"]:
            sys.exit(f"{path}:{number}: '{key}' given twice for mutant '{current['id']}'")
        current["fields"][key] = value
    finish(current)
    return mutants


def run_command(command, log_path, **options):
    """Runs `command` in its own process group, output to `log_path`; returns its exit code.

    On Ctrl-C, SIGTERM or an error here the whole group (make and the compilers it started)
    is ended and waited for before the caller restores a file: a compiler still running could
    otherwise write an object file of the mutated code after the restore, newer than the
    restored header, and make would then keep that object."""
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options)
        try:
            return process.wait()
        except BaseException:
            end_process_group(process)
            raise


def end_process_group(process):
    """SIGTERM to every process of the group, SIGKILL to those still there 10 s later."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signal_number)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            continue
        for _ in range(100):  # the leader is gone; its compilers may take a moment longer
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


class signals_held:
    """Holds Ctrl-C, SIGTERM and SIGHUP back while a file is written; they arrive afterwards."""

    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

    def __enter__(self):
        self.previous = signal.pthread_sigmask(signal.SIG_BLOCK, self.held)

    def __exit__(self, *_):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.previous)


class FileRestorer:
    """Applies one mutant at a time and puts the original bytes back, checking them.

    While a file is mutated its original bytes are also kept in the build directory, with a
    note of where they belong, so a run that was killed outright is undone by the next one."""

    def __init__(self, build_dir):
        self.journal = build_dir / "mutation-restore.json"
        self.copies = build_dir / "mutation-restore"

    def recover_interrupted_run(self):
        if not self.journal.exists():
            return
        entry = json.loads(self.journal.read_text(encoding="utf-8"))
        target, copy = Path(entry["file"]), Path(entry["copy"])
        original = copy.read_bytes()
        if target.read_bytes() != original:
            target.write_bytes(original)
            print(f"restored {target} (left mutated by an interrupted run)")
        self.forget()

    def apply(self, path, original_bytes, mutated_bytes):
        self.copies.mkdir(parents=True, exist_ok=True)
        copy = self.copies / path.name
        with signals_held():
            copy.write_bytes(original_bytes)
            self.journal.write_text(json.dumps({"file": str(path), "copy": str(copy)}), encoding="utf-8")
            path.write_bytes(mutated_bytes)

    def restore(self, path, original_bytes):
        with signals_held():  # a second Ctrl-C must not cut the restore short
            path.write_bytes(original_bytes)
            if path.read_bytes() != original_bytes:
                raise RuntimeError(f"{path}: restoring the original bytes failed; the copy is in {self.copies}")
            self.forget()

    def forget(self):
        self.journal.unlink(missing_ok=True)


class CTestSuite:
    """The build directory's ctest entries: which programs they run, and running a chosen few."""

    def __init__(self, build_dir):
        self.build_dir = build_dir

    def entries(self):
        listing = subprocess.run(["ctest", "--test-dir", str(self.build_dir), "-N", "--show-only=json-v1"],
                                 capture_output=True, text=True, check=True)
        return json.loads(listing.stdout)["tests"]

    def programs_of(self, entry):
        """Names of the build directory's programs a test runs (its command and -DX=path arguments)."""
        names = set()
        for word in entry.get("command", []):
            candidate = Path(word.split("=", 1)[-1])
            if candidate.is_absolute() and self.build_dir in candidate.parents and os.access(candidate, os.X_OK) \
                    and candidate.is_file():
                names.add(candidate.name)
        return names

    @staticmethod
    def labels_of(entry):
        for item in entry.get("properties", []):
            if item["name"] == "LABELS":
                return set(item["value"])
        return set()

    def select(self, mutant):
        """(ctest numbers, names) of the mutant's tests, or raises ValueError saying why not.

        Every selected test must run only programs among the mutant's targets: any other
        program was built from another mutant's code or an old tree, and would mislead."""
        numbers, names = [], []
        pattern = re.compile(mutant.tests) if mutant.tests else None
        for number, entry in enumerate(self.entries(), start=1):
            programs = self.programs_of(entry)
            if pattern is None:
                if not programs or not programs <= set(mutant.targets):
                    continue
            elif not pattern.search(entry["name"]):
                continue
            if not set(mutant.labels) <= self.labels_of(entry):
                continue
            if "command" not in entry:
                raise ValueError(f"test '{entry['name']}' has not been built: add its program to targets")
            foreign = programs - set(mutant.targets)
            if foreign:
                raise ValueError(f"test '{entry['name']}' runs {', '.join(sorted(foreign))}, which this mutant "
                                 f"does not rebuild: add it to targets or narrow tests")
            numbers.append(number)
            names.append(entry["name"])
        if not numbers:
            raise ValueError("no ctest entry matches its targets, tests and labels")
        return numbers, names

    def run(self, numbers, timeout, log_path):
        """Runs the tests; returns (exit code, {name: ctest's reason} of the tests that failed or
        did not run). A test that skips itself is listed with the reason "Skipped"."""
        command = ["ctest", "--test-dir", str(self.build_dir), "--output-on-failure", "--no-tests=error",
                   "--timeout", str(timeout), "-I", "0,0,0," + ",".join(map(str, numbers))]
        environment = dict(os.environ, OMP_WAIT_POLICY="passive")
        code = run_command(command, log_path, env=environment)
        failures, in_failure_list = {}, False
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("The following tests FAILED:", "The following tests did not run:")):
                in_failure_list = True
                continue
            listed = re.match(r"\s+\d+ - (.*) \(([^()]*)\)$", line)
            if in_failure_list and listed:
                failures[listed.group(1)] = listed.group(2)
            elif in_failure_list and line.strip():
                in_failure_list = False
        return code, failures


class MutationRun:
    def __init__(self, options):
        self.options = options
        self.build_dir = Path(options.build_dir).resolve()
        self.logs = self.build_dir / "mutation-logs"
        self.suite = CTestSuite(self.build_dir)
        self.restorer = FileRestorer(self.build_dir)
        self.baseline_failures = set()

    def configure_once(self):
        if (self.build_dir / "CMakeCache.txt").exists():
            return
        print(f"configuring {self.build_dir} (once)")
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / "configure.log"
        code = run_command(["cmake", "-S", str(REPOSITORY), "-B", str(self.build_dir), "-DCMAKE_BUILD_TYPE=Release",
                            "-DLATENT_BUILD_EXAMPLES=OFF"], log)
        if code != 0:
            sys.exit(f"configuring {self.build_dir} failed: see {log}")

    def build(self, targets, log_path):
        command = ["nice", "-n", str(self.options.nice), "cmake", "--build", str(self.build_dir),
                   "-j", str(self.options.jobs), "--target", *targets]
        return run_command(command, log_path)

    def check_clean(self, mutants):
        files = sorted({mutant.file for mutant in mutants})
        status = subprocess.run(["git", "-C", str(REPOSITORY), "status", "--porcelain", "--", *files],
                                capture_output=True, text=True, check=True).stdout
        if status.strip():
            sys.exit("refusing to run: files the mutants change have uncommitted changes "
                     "(commit or stash them first):\n" + status)

    @staticmethod
    def occurrences(mutant):
        path = REPOSITORY / mutant.file
        if not path.exists():
            return None, 0
        text = path.read_bytes()
        return text, text.count(mutant.original.encode("utf-8"))

    def establish_baseline(self, mutants):
        """Builds every target once unmutated and notes the selected tests that already fail."""
        targets = sorted({target for mutant in mutants for target in mutant.targets})
        print(f"baseline: building {' '.join(targets)}")
        if self.build(targets, self.logs / "baseline.build.log") != 0:
            sys.exit(f"the unmutated tree does not build: see {self.logs / 'baseline.build.log'}")
        numbers = set()
        for mutant in mutants:
            try:
                numbers.update(self.suite.select(mutant)[0])
            except ValueError:
                pass  # reported when the mutant runs
        if not numbers:
            return
        print(f"baseline: running {len(numbers)} tests unmutated")
        _, failures = self.suite.run(sorted(numbers), self.options.timeout, self.logs / "baseline.test.log")
        self.baseline_failures = set(failures)
        for name, reason in failures.items():  # in ctest order
            print(f"baseline: '{name}' already fails unmutated ({reason}); mutants that run it are skipped")

    def run_mutant(self, mutant):
        start = time.monotonic()
        text, count = self.occurrences(mutant)
        if count != 1:
            where = "the file does not exist" if text is None else \
                "original text not found (the code changed)" if count == 0 else \
                f"original text occurs {count} times: it must be unique"
            return Outcome(mutant, "skipped", f"{where}; see mutants.txt line {mutant.line}")
        path = REPOSITORY / mutant.file
        mutated = text.replace(mutant.original.encode("utf-8"), mutant.mutated.encode("utf-8"))
        self.restorer.apply(path, text, mutated)
        try:
            if self.build(mutant.targets, self.logs / f"{mutant.id}.build.log") != 0:
                return Outcome(mutant, "did not compile", f"see {self.logs / (mutant.id + '.build.log')}",
                               time.monotonic() - start)
            try:
                numbers, names = self.suite.select(mutant)
            except ValueError as reason:
                return Outcome(mutant, "skipped", str(reason), time.monotonic() - start)
            already_failing = self.baseline_failures.intersection(names)
            if already_failing:
                return Outcome(mutant, "skipped", f"'{sorted(already_failing)[0]}' fails unmutated",
                               time.monotonic() - start)
            code, failures = self.suite.run(numbers, self.options.timeout, self.logs / f"{mutant.id}.test.log")
        finally:
            self.restorer.restore(path, text)
        return self.classify(mutant, len(numbers), code, failures, time.monotonic() - start)

    def classify(self, mutant, tests, code, failures, seconds):
        log = self.logs / f"{mutant.id}.test.log"
        by_reason = {}
        for name, reason in failures.items():  # in ctest order
            by_reason.setdefault(reason, []).append(name)
        skipped = len(by_reason.pop("Skipped", []))
        not_run = by_reason.pop("Not Run", [])
        if not_run:  # ctest could not start it (a missing program): no verdict either way
            return Outcome(mutant, "skipped", f"'{not_run[0]}' could not be run: see {log}", seconds)
        if "Timeout" in by_reason:
            return Outcome(mutant, "timed out", f"'{by_reason['Timeout'][0]}' ran past {self.options.timeout} s",
                           seconds)
        failed = [(name, reason) for reason, names in by_reason.items() for name in names]
        if failed:
            more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
            return Outcome(mutant, "killed", f"'{failed[0][0]}' ({failed[0][1]}){more}, of {tests} tests", seconds)
        if code != 0:
            return Outcome(mutant, "killed", f"ctest exit code {code}: see {log}", seconds)
        passed = tests - skipped
        note = f", {skipped} skipped themselves (data or a tool missing?)" if skipped else ""
        return Outcome(mutant, "survived", f"{passed} tests passed{note}", seconds)

    def run(self, mutants):
        self.logs.mkdir(parents=True, exist_ok=True)
        self.restorer.recover_interrupted_run()
        self.check_clean(mutants)
        runnable = [mutant for mutant in mutants if self.occurrences(mutant)[1] == 1]
        if runnable and not self.options.no_baseline:
            self.establish_baseline(runnable)
        outcomes = []
        for position, mutant in enumerate(mutants, start=1):
            print(f"[{position}/{len(mutants)}] {mutant.id}: {mutant.bug}", flush=True)
            outcome = self.run_mutant(mutant)
            print(f"    {outcome.status}: {outcome.detail} ({outcome.seconds:.0f} s)", flush=True)
            outcomes.append(outcome)
            if outcome.status in ("survived", "did not compile") and not self.options.keep_going:
                print(f"    stopping: a mutant that {'survived' if outcome.status == 'survived' else 'does not compile'}"
                      " needs a look (--keep-going runs the whole list)")
                break
        return outcomes


def print_table(outcomes):
    if not outcomes:
        print("no mutant ran")
        return
    widths = (max(len("mutant"), *(len(o.mutant.id) for o in outcomes)),
              max(len("file"), *(len(o.mutant.file.replace("include/latent/", "")) for o in outcomes)),
              len("did not compile"))
    print()
    print(f"{'mutant':<{widths[0]}}  {'file':<{widths[1]}}  {'result':<{widths[2]}}  detail")
    for outcome in outcomes:
        short_file = outcome.mutant.file.replace("include/latent/", "")
        print(f"{outcome.mutant.id:<{widths[0]}}  {short_file:<{widths[1]}}  {outcome.status:<{widths[2]}}  "
              f"{outcome.detail}")
    count = {status: sum(o.status == status for o in outcomes)
             for status in ("killed", "timed out", "survived", "did not compile", "skipped")}
    counted = count["killed"] + count["timed out"] + count["survived"]
    print()
    print(f"killed {count['killed']}, timed out {count['timed out']} (counted as killed), survived "
          f"{count['survived']}; not counted: did not compile {count['did not compile']}, skipped {count['skipped']}")
    if counted:
        caught = count["killed"] + count["timed out"]
        print(f"mutation score: {caught} of {counted} = {100.0 * caught / counted:.1f}%")
    else:
        print("mutation score: none (no mutant was killed or survived)")
    for outcome in outcomes:
        if outcome.status == "survived":
            print(f"survived: {outcome.mutant.id} ({outcome.mutant.file}): {outcome.mutant.bug}")


def list_mutants(mutants):
    id_width = max(len(mutant.id) for mutant in mutants) if mutants else 0
    for mutant in mutants:
        _, count = MutationRun.occurrences(mutant)
        state = "ok" if count == 1 else "original text not found" if count == 0 else f"original text occurs {count} times"
        print(f"{mutant.id:<{id_width}}  {mutant.file.replace('include/latent/', ''):<32} "
              f"{' '.join(mutant.targets):<26} {state}\n{'':<{id_width + 2}}{mutant.bug}")
    folders = sorted({Path(mutant.file).parent.name for mutant in mutants})
    print(f"\n{len(mutants)} mutants over {len(folders)} folders: {', '.join(folders)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and whether their text is found")
    parser.add_argument("--only", default="", help="comma-separated mutant ids to run (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel build jobs (default 2)")
    parser.add_argument("--build-dir", default=str(REPOSITORY / "build-mutation"),
                        help="build directory, configured once (default build-mutation)")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per ctest entry (default 300)")
    parser.add_argument("--keep-going", action="store_true",
                        help="run the whole list; without it the run stops at the first mutant that survives "
                             "or does not compile")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip building and running the selected tests unmutated first")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the builds (default 10)")
    parser.add_argument("--mutants", default=str(MUTANT_LIST), help="the mutant list (default: mutants.txt beside this script)")
    options = parser.parse_args()

    mutants = parse_mutants(Path(options.mutants))
    if options.only:
        wanted = [name.strip() for name in options.only.split(",") if name.strip()]
        unknown = sorted(set(wanted) - {mutant.id for mutant in mutants})
        if unknown:
            sys.exit(f"unknown mutant ids: {', '.join(unknown)}")
        mutants = [mutant for mutant in mutants if mutant.id in wanted]
    if options.list:
        list_mutants(mutants)
        return 0

    def stop(signal_number, _frame):
        raise Interrupted(signal.Signals(signal_number).name)

    # Set for SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then
    # would not turn it into KeyboardInterrupt.
    for signal_number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signal_number, stop)
    run = MutationRun(options)
    run.configure_once()
    try:
        outcomes = run.run(mutants)
    except (KeyboardInterrupt, Interrupted) as stopped:
        print(f"\ninterrupted ({stopped or 'SIGINT'}); no file is left mutated")
        return 130
    print_table(outcomes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
