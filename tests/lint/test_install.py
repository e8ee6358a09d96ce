#!/usr/bin/env python3
"""What `meson install` puts into a DESTDIR against what refers to it: every
program an installed unit or the libvirt hook runs is installed (or, outside
the prefix, an absolute system path); every man page a unit's Documentation=
or a program's --help names is installed; the installed dynmemd accepts the
installed example configuration (`dynmemd -n`, as the README's install steps
run it); every program has its bash completion, which registers itself for that
program in a plain bash, and its zsh completion, where -Dzshcompletiondir says or in
PREFIX/share/zsh/site-functions, which compinit maps to that program in a plain `zsh -f`
(when zsh is here); every /usr/local path the README and docs/ name is installed (when
the build's prefix is /usr/local). Prints TAP.

usage: test_install.py SOURCE_DIR BUILD_DIR
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dynmemtest import Skip, Tap, check  # noqa: E402

tap = Tap()

PROGRAMS = ("bin/dynmem", "bin/dynmem-sim", "bin/dynmem-tracegen", "sbin/dynmemd",
            "sbin/dynmem-guest")


def inside(ctx, path):
    """An absolute installed path, as it is in the DESTDIR."""
    return os.path.join(ctx["destdir"], path.lstrip("/"))


def find(ctx, pattern):
    return sorted(glob.glob(os.path.join(ctx["destdir"], "**", pattern), recursive=True))


def under_prefix(ctx, path):
    return path == ctx["prefix"] or path.startswith(ctx["prefix"].rstrip("/") + "/")


def check_program(ctx, path, where):
    if under_prefix(ctx, path):
        real = inside(ctx, path)
        check(os.path.isfile(real) and os.access(real, os.X_OK),
              f"{where}: {path} is installed and executable")
    else:
        check(path.startswith("/"), f"{where}: {path} is an absolute path")


@tap.case
def every_unit_runs_an_installed_program(ctx):
    units = find(ctx, "*.service")
    names = sorted(os.path.basename(u) for u in units)
    check(names == ["dynmem-guest.service", "dynmemd.service"],
          "both units are installed", names)
    for unit in units:
        for line in open(unit):
            m = re.match(r"(Exec\w+)=([-+@!:|]*)(\S+)", line)
            if m:
                check_program(ctx, m.group(3), f"{os.path.basename(unit)} {m.group(1)}")
                ctx["ran"] = ctx.get("ran", 0) + 1
    check(ctx.get("ran", 0) >= 3, "the units have Exec lines", ctx.get("ran"))


@tap.case
def the_libvirt_hook_runs_the_installed_dynmem(ctx):
    hooks = find(ctx, "libvirt-hook")
    check(len(hooks) == 1, "one libvirt-hook installed", hooks)
    check(os.access(hooks[0], os.X_OK), "the hook is executable")
    m = re.search(r"^exec (\S+) libvirt-hook ", open(hooks[0]).read(), re.M)
    check(m, "the hook execs dynmem libvirt-hook")
    check_program(ctx, m.group(1), "libvirt-hook")


def man_page(ctx, name, section):
    return inside(ctx, os.path.join(ctx["mandir"], f"man{section}", f"{name}.{section}"))


@tap.case
def every_man_page_named_is_installed(ctx):
    named = set()
    for unit in find(ctx, "*.service"):
        for line in open(unit):
            if line.startswith("Documentation="):
                named.update(re.findall(r"man:([\w.-]+)\((\d)\)", line))
    for prog in PROGRAMS:
        path = inside(ctx, os.path.join(ctx["prefix"], prog))
        r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
        check(r.returncode == 0, f"{prog} --help exits 0", r.returncode, r.stderr)
        named.update(re.findall(r"\b(dynmem[\w.-]*)\((\d)\)", r.stdout))
        named.add((os.path.basename(prog), "8" if prog.startswith("sbin/") else "1"))
    missing = [f"{n}({s})" for n, s in sorted(named) if not os.path.isfile(man_page(ctx, n, s))]
    check(not missing, "every man page named is installed", missing)


@tap.case
def the_installed_dynmemd_accepts_the_installed_example(ctx):
    examples = find(ctx, "dynmem.conf.example")
    check(len(examples) == 1, "one dynmem.conf.example installed", examples)
    dynmemd = inside(ctx, os.path.join(ctx["prefix"], "sbin", "dynmemd"))
    r = subprocess.run([dynmemd, "-n", "-f", examples[0]], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, "dynmemd -n accepts it", r.returncode, r.stdout + r.stderr)


@tap.case
def every_program_has_its_bash_completion(ctx):
    scripts = find(ctx, os.path.join("bash-completion", "completions", "*"))
    names = sorted(os.path.basename(p) for p in scripts)
    check(names == sorted(os.path.basename(p) for p in PROGRAMS),
          "one completion per program, named after it", names)
    for script in scripts:
        name = os.path.basename(script)
        r = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                            'source "$1" && complete -p "$2"', "sh", script, name],
                           capture_output=True, text=True, timeout=30)
        check(r.returncode == 0 and re.match(r"complete -F \S+ " + re.escape(name) + "$",
                                             r.stdout.strip()) and not r.stderr,
              f"{name}'s completion registers itself in a plain bash", r.stdout, r.stderr)


@tap.case
def every_program_has_its_zsh_completion(ctx):
    where = ctx["zshcompletiondir"] or os.path.join(ctx["prefix"], ctx["datadir"], "zsh",
                                                     "site-functions")
    files = sorted(glob.glob(os.path.join(inside(ctx, where), "_*")))
    names = [os.path.basename(p) for p in files]
    check(names == sorted("_" + os.path.basename(p) for p in PROGRAMS),
          f"one completion per program in {where}, named _PROGRAM", names)
    if not shutil.which("zsh"):
        raise Skip("zsh is not installed (scripts/deps.sh): the files are there")
    for path in files:
        name = os.path.basename(path)[1:]
        r = subprocess.run(["zsh", "-f", "-c", 'fpath=($1 $fpath); autoload -Uz compinit; '
                            'compinit -u -D; print -r -- $_comps[$2]', "zsh",
                            os.path.dirname(path), name],
                           capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and r.stdout == f"_{name}\n" and not r.stderr,
              f"compinit maps {name} to the installed _{name}", r.stdout, r.stderr)


@tap.case
def the_paths_the_docs_name_are_installed(ctx):
    if ctx["prefix"] != "/usr/local":
        raise Skip(f"the build's prefix is {ctx['prefix']}, the docs name /usr/local")
    docs = [os.path.join(ctx["src"], "README.md")] + sorted(
        glob.glob(os.path.join(ctx["src"], "docs", "*.md")))
    named = set()
    for doc in docs:
        named.update(re.findall(r"/usr/local/[\w./-]*[\w]", open(doc).read()))
    missing = sorted(p for p in named if not os.path.exists(inside(ctx, p)))
    check(named, "the docs name installed paths")
    check(not missing, "every /usr/local path in README.md and docs/ is installed", missing)


def option(build, name):
    r = subprocess.run(["meson", "introspect", "--buildoptions", build], capture_output=True,
                       text=True, timeout=60)
    try:
        return next(o["value"] for o in json.loads(r.stdout) if o["name"] == name)
    except (ValueError, StopIteration):
        return None


def setup():
    if len(sys.argv) != 3:
        print("usage: test_install.py SOURCE_DIR BUILD_DIR", file=sys.stderr)
        sys.exit(2)
    src, build = (os.path.abspath(a) for a in sys.argv[1:])
    prefix, mandir = option(build, "prefix"), option(build, "mandir")
    datadir, zshcompletiondir = option(build, "datadir"), option(build, "zshcompletiondir")
    tmp = tempfile.mkdtemp(prefix="dynmem-install-")
    destdir = os.path.join(tmp, "dest")
    r = subprocess.run(["meson", "install", "-C", build, "--no-rebuild", "--quiet",
                        "--destdir", destdir], capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not prefix or not mandir:
        shutil.rmtree(tmp)
        print("1..1\nnot ok 1 - meson install --destdir")
        for line in (r.stdout + r.stderr).splitlines():
            print(f"# {line}")
        sys.exit(1)
    return {"src": src, "tmp": tmp, "destdir": destdir, "prefix": prefix,
            "mandir": os.path.join(prefix, mandir), "datadir": datadir,
            "zshcompletiondir": zshcompletiondir}


if __name__ == "__main__":
    ctx = setup()
    try:
        rc = tap.run(ctx)
    finally:
        shutil.rmtree(ctx["tmp"], ignore_errors=True)
    sys.exit(rc)
