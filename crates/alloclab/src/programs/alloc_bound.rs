//! The allocation-bound programs of `alloclab programs`: C programs of this
//! repository written for the patterns of the allocator benchmarks
//! (`tests/programs/c/`, compiled here with the system C compiler into the
//! work folder), and real programs from Debian's packages that allocate
//! hard (Redis driven by `redis-benchmark` over loopback, Lua and Ruby
//! scripts that build and drop tables and strings, `bc` on big numbers,
//! sqlite3 in memory). A program whose executable is missing is skipped,
//! and its row says so.
//!
//! Which programs are allocation-bound is measured, not assumed: the report
//! gives each program's malloc/free calls per second (counted by the
//! shims, over the fastest allocator's wall time), and the geometric means
//! of the targets take the programs at or above
//! [`super::ALLOC_BOUND_RATE`] (Ruby, sqlite3 and bc stay below it: they
//! are reported, not counted). (Tried and
//! left out: the z3 solver, 129,000 allocations in 1.6 s on an SMT
//! problem, and an n-body simulation whose force loop dwarfs its tree
//! allocations: neither spends its time in malloc.)

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use super::set::{InputSize, Program, Server, Setup, Skipped, find_program, step};

/// The C programs' shared header.
const COMMON_H: &str = include_str!("../../../../tests/programs/c/common.h");
/// The forwarder that gives a program glibc's malloc back.
const GLIBC_MALLOC_C: &str = include_str!("../../../../tests/programs/c/glibc_malloc.c");
/// The Lua script.
pub const TABLES_LUA: &str = include_str!("../../../../tests/programs/tables.lua");
/// The Ruby script.
pub const OBJECTS_RB: &str = include_str!("../../../../tests/programs/objects.rb");
/// The sqlite3 session.
pub const MEM_SQL: &str = include_str!("../../../../tests/programs/mem.sql");
/// The bc program.
pub const PI_BC: &str = include_str!("../../../../tests/programs/pi.bc");

/// One C program: name, source, arguments (full, quick), threaded, what it
/// does.
struct CProgram {
    name: &'static str,
    source: &'static str,
    full: &'static [&'static str],
    quick: &'static [&'static str],
    threaded: bool,
    what: &'static str,
}

const C_PROGRAMS: [CProgram; 9] = [
    CProgram {
        name: "larson",
        source: include_str!("../../../../tests/programs/c/larson.c"),
        full: &["2", "20", "500000", "1000", "512"],
        quick: &["2", "3", "50000", "1000", "512"],
        threaded: true,
        what: "server simulation (Larson): 2 worker threads replace random slots of \
               16..512 B blocks, each table handed to a fresh thread every round",
    },
    CProgram {
        name: "prodcons",
        source: include_str!("../../../../tests/programs/c/prodcons.c"),
        full: &["1", "3000000", "256"],
        quick: &["1", "200000", "256"],
        threaded: true,
        what: "producer/consumer: one thread allocates 16..256 B blocks, another frees them \
               (every free crosses threads)",
    },
    CProgram {
        name: "false-sharing",
        source: include_str!("../../../../tests/programs/c/false_sharing.c"),
        full: &["2", "20000", "2000", "8"],
        quick: &["2", "2000", "2000", "8"],
        threaded: true,
        what: "cache-scratch (Hoard): 2 threads free an object the main thread allocated, \
               then allocate, write and free 8-byte objects",
    },
    CProgram {
        name: "small-loop",
        source: include_str!("../../../../tests/programs/c/small_loop.c"),
        full: &["1", "30000000", "64", "256"],
        quick: &["1", "2000000", "64", "256"],
        threaded: false,
        what: "malloc/free pairs of 16..256 B on a window of 64 blocks, one thread",
    },
    CProgram {
        name: "small-loop-2t",
        source: include_str!("../../../../tests/programs/c/small_loop.c"),
        full: &["2", "15000000", "64", "256"],
        quick: &["2", "1000000", "64", "256"],
        threaded: true,
        what: "the same on 2 threads",
    },
    CProgram {
        name: "mixed",
        source: include_str!("../../../../tests/programs/c/mixed.c"),
        full: &["2", "4000000", "20000"],
        quick: &["2", "300000", "20000"],
        threaded: true,
        what: "mixed sizes (80% up to 128 B, some to 4 KiB, a few to 64 KiB), realloc growth, \
               runs freed at once; 2 threads",
    },
    CProgram {
        name: "large-churn",
        source: include_str!("../../../../tests/programs/c/large_churn.c"),
        full: &["400", "4", "5", "25"],
        quick: &["40", "4", "5", "25"],
        threaded: false,
        what: "large blocks: 4 slots of 5..25 MiB freed and refilled, every page touched",
    },
    CProgram {
        name: "bignum",
        source: include_str!("../../../../tests/programs/c/bignum.c"),
        full: &["200", "400"],
        quick: &["200", "30"],
        threaded: false,
        what: "bignum arithmetic (cfrac-like): factorials and decimal conversion, a new \
               block per operation, many small short-lived objects",
    },
    CProgram {
        name: "minimizer",
        source: include_str!("../../../../tests/programs/c/minimizer.c"),
        full: &["24", "6000", "10", "7"],
        quick: &["24", "1000", "4", "7"],
        threaded: false,
        what: "logic minimizer (espresso-like): cubes as small blocks, consensus and \
               containment, the cover rebuilt every round",
    },
];

/// Compiles `source` (with `common.h` beside it) into `dir/name`.
fn compile(cc: &Path, dir: &Path, name: &str, source: &str, shared: bool) -> Result<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).with_context(|| format!("writing {}", src.display()))?;
    std::fs::write(dir.join("common.h"), COMMON_H)?;
    let exe = dir.join(if shared {
        format!("lib{name}.so")
    } else {
        name.to_string()
    });
    let mut cmd = Command::new(cc);
    cmd.args(["-O2", "-pthread", "-o"]).arg(&exe);
    if shared {
        cmd.args(["-shared", "-fPIC"]);
    }
    let out = cmd
        .arg(&src)
        .args(["-lm", "-ldl"])
        .output()
        .with_context(|| format!("running {}", cc.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} {name}.c failed: {}",
            cc.display(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("")
        );
    }
    Ok(exe)
}

/// A free TCP port on the loopback interface (the kernel's choice).
fn free_port() -> Option<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).ok()?;
    Some(l.local_addr().ok()?.port())
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Adds the allocation-bound programs whose executables exist to `out`,
/// with their inputs written (and the C ones compiled) into `dir`; the
/// others to `skipped`.
pub fn programs(
    scale: InputSize,
    dir: &Path,
    out: &mut Vec<Program>,
    skipped: &mut Skipped,
) -> Result<()> {
    let quick = scale == InputSize::Quick;
    let cdir = dir.join("c");
    std::fs::create_dir_all(&cdir)?;
    let cc = find_program(&["cc", "gcc", "clang"]);
    for p in &C_PROGRAMS {
        let Some(cc) = &cc else {
            skipped.push((p.name.into(), "no C compiler (cc) found".into()));
            continue;
        };
        let exe = match compile(cc, &cdir, p.name, p.source, false) {
            Ok(e) => e,
            Err(e) => {
                skipped.push((p.name.into(), e.to_string()));
                continue;
            }
        };
        let args = if quick { p.quick } else { p.full };
        let mut argv: Vec<&OsStr> = vec![exe.as_os_str()];
        argv.extend(args.iter().map(|a| os(a)));
        out.push(Program {
            name: p.name,
            description: format!("{} (`{} {}`, C)", p.what, p.name, args.join(" ")),
            threaded: p.threaded,
            setup: Setup::Nothing,
            steps: vec![step(&argv, &[])],
            glibc_preload: None,
        });
    }

    let script = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };

    match find_program(&["redis-server"])
        .zip(find_program(&["redis-benchmark"]))
        .zip(find_program(&["redis-cli"]))
    {
        Some(((server, bench), cli)) => {
            let port = free_port().context("no free loopback port")?;
            let n = if quick { "30000" } else { "300000" };
            let p = port.to_string();
            // redis-server links jemalloc: its glibc row preloads glibc's
            // own malloc back.
            let glibc = cc
                .as_ref()
                .and_then(|cc| compile(cc, &cdir, "glibc_malloc", GLIBC_MALLOC_C, true).ok());
            let client = format!(
                "'{}' -h 127.0.0.1 -p {p} -n {n} -P 16 -d 64 -t set,get,incr,lpush,lpop,sadd,hset -q \
                 >/dev/null && '{}' -h 127.0.0.1 -p {p} dbsize",
                bench.display(),
                cli.display()
            );
            let mut s = step(&[os("/bin/sh"), os("-c"), os(&client)], &[]);
            s.server = Some(Server {
                argv: [
                    server.as_os_str(),
                    os("--port"),
                    os(&p),
                    os("--bind"),
                    os("127.0.0.1"),
                    os("--save"),
                    os(""),
                    os("--appendonly"),
                    os("no"),
                    os("--protected-mode"),
                    os("no"),
                    os("--daemonize"),
                    os("no"),
                    os("--loglevel"),
                    os("warning"),
                ]
                .map(OsStr::to_os_string)
                .to_vec(),
                port,
            });
            if glibc.is_none() {
                skipped.push(("redis".into(), "no C compiler for its glibc row".into()));
            } else {
                out.push(Program {
                    name: "redis",
                    description: format!(
                        "redis-server driven by redis-benchmark over loopback: {n} requests of \
                         each of SET, GET, INCR, LPUSH, LPOP, SADD, HSET, 64-byte values, \
                         pipelined by 16 (the server is measured; the client runs on glibc)"
                    ),
                    threaded: true,
                    setup: Setup::Nothing,
                    steps: vec![s],
                    glibc_preload: glibc,
                });
            }
        }
        None => skipped.push((
            "redis".into(),
            "redis-server, redis-benchmark or redis-cli not found (apt-get install redis-server)"
                .into(),
        )),
    }

    match find_program(&["lua5.4", "lua"]) {
        Some(lua) => {
            let s = script("tables.lua", TABLES_LUA)?;
            let n = if quick { "10000" } else { "100000" };
            out.push(Program {
                name: "lua",
                description: format!(
                    "lua tables.lua {n}: builds and drops tables of records and strings, \
                     5 rounds (Lua allocates every object with realloc)"
                ),
                threaded: false,
                setup: Setup::Nothing,
                steps: vec![step(&[lua.as_os_str(), s.as_os_str(), os(n)], &[])],
                glibc_preload: None,
            });
        }
        None => skipped.push((
            "lua".into(),
            "lua5.4 not found (apt-get install lua5.4)".into(),
        )),
    }

    match find_program(&["ruby"]) {
        Some(ruby) => {
            let s = script("objects.rb", OBJECTS_RB)?;
            let n = if quick { "10000" } else { "100000" };
            out.push(Program {
                name: "ruby",
                description: format!(
                    "ruby objects.rb {n}: hashes, arrays and strings built, joined, split, \
                     sorted and dropped, 4 rounds"
                ),
                threaded: false,
                setup: Setup::Nothing,
                steps: vec![step(&[ruby.as_os_str(), s.as_os_str(), os(n)], &[])],
                glibc_preload: None,
            });
        }
        None => skipped.push((
            "ruby".into(),
            "ruby not found (apt-get install ruby)".into(),
        )),
    }

    match find_program(&["sqlite3"]) {
        Some(sqlite) => {
            let sql = if quick {
                MEM_SQL.replace("x < 200000", "x < 20000")
            } else {
                MEM_SQL.to_string()
            };
            let s = script("mem.sql", &sql)?;
            out.push(Program {
                name: "sqlite",
                description: format!(
                    "sqlite3 :memory:: {} rows inserted, two indexes, group-by, update, delete",
                    if quick { "20,000" } else { "200,000" }
                ),
                threaded: false,
                setup: Setup::Nothing,
                steps: vec![step(
                    &[
                        sqlite.as_os_str(),
                        os(":memory:"),
                        os("-init"),
                        s.as_os_str(),
                        os(".quit"),
                    ],
                    &[],
                )],
                glibc_preload: None,
            });
        }
        None => skipped.push((
            "sqlite".into(),
            "sqlite3 not found (apt-get install sqlite3)".into(),
        )),
    }

    match find_program(&["bc"]) {
        Some(bc) => {
            let text = if quick {
                PI_BC.replace("scale=1500", "scale=300")
            } else {
                PI_BC.to_string()
            };
            let s = script("pi.bc", &text)?;
            out.push(Program {
                name: "bc",
                description: format!(
                    "bc -l: pi to {} digits (every intermediate number a block of its own)",
                    if quick { 300 } else { 1500 }
                ),
                threaded: false,
                setup: Setup::Nothing,
                steps: vec![step(&[bc.as_os_str(), os("-lq"), s.as_os_str()], &[])],
                glibc_preload: None,
            });
        }
        None => skipped.push(("bc".into(), "bc not found (apt-get install bc)".into())),
    }
    Ok(())
}
