/**
 * The cage file's JSON Schema (draft 2020-12): the one definition of its shape. The loader
 * validates against this object, the raw (as-written) types are derived from it (schemaTypes.ts),
 * and docs/config.schema.json is this object published (a test keeps the two equal).
 * "x-error" replaces ajv's message for a value that fails its pattern or type.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_ACTUATOR_PERIOD_MS,
  DEFAULT_ACTUATOR_STALE_AFTER_MS,
  DEFAULT_AGENT,
  DEFAULT_BALLOON_ACTUATOR,
  DEFAULT_CAGE_BALLOON,
  DEFAULT_CPU_ACTUATOR,
  DEFAULT_DESCENDANTS,
  DEFAULT_EXTERNAL_ACTUATOR_STOP_TIMEOUT_MS,
  DEFAULT_GUARDIAN_START_TIMEOUT_MS,
  DEFAULT_INFLUX,
  DEFAULT_LIMITER_ACTUATOR,
  DEFAULT_PAGE_CACHE,
  DEFAULT_PROMETHEUS,
} from "./defaults.js";
import type { FromSchema, SchemaDefs } from "./schemaTypes.js";
import { CPU_PROGRAM_SETTINGS } from "./cageConfig.js";
import { CMDLINE_PATTERN_MAX_CHARS } from "./checks/cmdlinePattern.js";

const MiB = 1024 * 1024;

/** agent.host: a DNS host name (labels of letters, digits and '-', dot-separated), 1-253 characters. */
const HOST_NAME_SOURCE = "^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$";
export const HOST_NAME_PATTERN = new RegExp(HOST_NAME_SOURCE);

/** A process matcher's selectors: vm.match[] and ids[] entries both take them. */
const MATCHER_PROPERTIES = {
  "pid": { "type": "integer", "minimum": 1, "maximum": 4194304 },
  "comm": {
    "description": "Exact /proc/PID/comm (at most 15 bytes: the kernel truncates it).",
    "type": "string",
    "minLength": 1
  },
  "uid": {
    "description": "Owner: a UID or a list of UIDs; a process matches when its real and its effective UID (/proc/PID/status) are both in it.",
    "oneOf": [
      { "type": "integer", "minimum": 0, "maximum": 4294967294 },
      { "type": "array", "minItems": 1, "items": { "type": "integer", "minimum": 0, "maximum": 4294967294 } }
    ]
  },
  "user": {
    "description": "Owner by name: a user name or a list of them, looked up in /etc/passwd when the file is loaded (an unknown name is an error); matched like uid.",
    "oneOf": [
      { "$ref": "#/$defs/userName" },
      { "type": "array", "minItems": 1, "items": { "$ref": "#/$defs/userName" } }
    ]
  },
  "allowNonRoot": {
    "description": "IDS matchers only: may select processes of users other than root (those in uid/user, or anyone when neither is given). Without it an IDS matcher must name root as its owner, so another user's process cannot pose as the IDS. Default false.",
    "type": "boolean"
  },
  "exe": {
    "description": "Exact target of the /proc/PID/exe link; a binary deleted or replaced while running (shown with \" (deleted)\") still matches its path.",
    "type": "string",
    "pattern": "^/(?!(.*/)?\\.\\.(/|$))",
    "x-error": "must be an absolute path without '..' segments"
  },
  "cmdline": {
    "description": `JavaScript regular expression tested against the command line joined with spaces, run by V8's linear-time engine: no backreferences or lookaround, at most ${CMDLINE_PATTERN_MAX_CHARS} characters.`,
    "type": "string",
    "minLength": 1,
    "maxLength": CMDLINE_PATTERN_MAX_CHARS
  },
  "cgroup": { "$ref": "#/$defs/cgroupPath" },
  "descendants": {
    "description": `Also match every descendant of a matched process. Default ${DEFAULT_DESCENDANTS}.`,
    "type": "boolean"
  }
} as const;

export const CONFIG_SCHEMA = {
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "$id": "https://offloadcage.invalid/schemas/config.schema.json",
  "title": "OffloadCage cage configuration",
  "description": "The agent's cage file (YAML or JSON). docs/config.md documents every field. Checks the schema cannot express (unique cage names, floor <= base, idsCap <= cap, failsafeCap within [vmFloor, vmCeiling], a matcher needs a selector, cmdline patterns run in linear time, user names exist, an IDS matcher's owner is root unless allowNonRoot) are made by config/checks/.",
  "type": "object",
  "required": ["cages"],
  "additionalProperties": false,
  "properties": {
    "agent": { "$ref": "#/$defs/agent" },
    "cages": {
      "type": "array",
      "items": { "$ref": "#/$defs/cage" }
    }
  },
  "$defs": {
    "agent": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "host": {
          "description": "This host's name in every series and point it exports (OpenTelemetry host.name, the InfluxDB host tag). Default: the machine's hostname.",
          "type": "string",
          "pattern": HOST_NAME_SOURCE,
          "x-error": "must be a host name: letters, digits and '-' in dot-separated labels of 1-63 characters, 253 at most (e.g. node-17.dc1)"
        },
        "runtimeDir": {
          "description": "Directory for the ipc:// sockets (created with mode 0700). Default: /run/offloadcage as root, else $XDG_RUNTIME_DIR/offloadcage-UID.",
          "type": "string",
          "pattern": "^/(?!(.*/)?\\.\\.(/|$))",
          "x-error": "must be an absolute path without '..' segments"
        },
        "stateDir": {
          "description": `Directory for state that must survive the agent's processes and a reboot: the InfluxDB history spool, the pipeline's sequence state, and the settings found before the agent first changed them, restored after a crash (created with mode 0700). Default ${DEFAULT_AGENT.stateDir}.`,
          "type": "string",
          "pattern": "^/(?!(.*/)?\\.\\.(/|$))",
          "x-error": "must be an absolute path without '..' segments"
        },
        "cpuIntervalMs": {
          "description": `CPU collector summary interval, ms. Default ${DEFAULT_AGENT.cpuIntervalMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 60000
        },
        "cpuProgram": {
          "description": `The CPU collector's eBPF program: libbpf (dist/bpf/cpuTime, BTF tracepoints, the cheaper one), bpftrace (bpf/cpuTime.bt) or auto (libbpf if it is built and attaches, else bpftrace; the choice and its reason are logged). Default ${DEFAULT_AGENT.cpuProgram}.`,
          "enum": CPU_PROGRAM_SETTINGS
        },
        "memorySampleMs": {
          "description": `/proc/PID/status sampling period, ms. Default ${DEFAULT_AGENT.memorySampleMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 3600000
        },
        "idsMemorySampleMs": {
          "description": `Sampling period of just the IDS processes' memory (/proc/PID/statm; status only when it moved), so the balloon sees an IDS's memory change within this, ms (every 10 ms while it moves); only the IDS of cages with a memory section while the balloon actuator runs (every cage's with an external actuator); false: off (memorySampleMs only). Default ${DEFAULT_AGENT.idsMemorySampleMs}.`,
          "oneOf": [{ "type": "integer", "minimum": 10, "maximum": 3600000 }, { "const": false }]
        },
        "resolveMs": {
          "description": `How often the matchers are re-resolved against /proc, ms. Default ${DEFAULT_AGENT.resolveMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 3600000
        },
        "prometheus": {
          "description": `Prometheus scrape endpoint: an object, true (${DEFAULT_PROMETHEUS.host}:${DEFAULT_PROMETHEUS.port}) or false (disabled).`,
          "type": ["object", "boolean"],
          "additionalProperties": false,
          "properties": {
            "host": { "type": "string", "minLength": 1 },
            "port": { "type": "integer", "minimum": 1, "maximum": 65535 }
          }
        },
        "otlp": {
          "description": "OTLP/HTTP metrics export; omitted or false = off.",
          "type": ["object", "boolean"],
          "additionalProperties": false,
          "required": ["endpoint"],
          "properties": {
            "endpoint": {
              "type": "string",
              "pattern": "^https?://.+",
              "x-error": "must be an http:// or https:// URL"
            },
            "intervalMs": { "type": "integer", "minimum": 100, "maximum": 3600000 }
          }
        },
        "pageCache": {
          "description": "Page cache attribution (eBPF): the IDS processes are moved into the cgroup v2 group /offloadcage/ids and their file reads' page cache is charged to their cage. An object, true (defaults) or false (off). Default: on when any cage has a memory section.",
          "type": ["object", "boolean"],
          "additionalProperties": false,
          "properties": {
            "intervalMs": { "description": `How often the kernel maps are read and published, ms. Default ${DEFAULT_PAGE_CACHE.intervalMs}.`, "type": "integer", "minimum": 10, "maximum": 60000 },
            "maxPages": { "description": `Cached pages (folios) whose owner the kernel map can hold; inserts beyond it are counted as untracked. Default ${DEFAULT_PAGE_CACHE.maxPages} (1 GiB of 4 KiB pages).`, "type": "integer", "minimum": 1, "maximum": 16777216 }
          }
        },
        "logLevel": {
          "enum": ["trace", "debug", "info", "warn", "error", "fatal"]
        },
        "actuators": {
          "description": "Actuator sections; each one present is started by `cage run` as a supervised child.",
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "balloon": { "$ref": "#/$defs/balloonActuator" },
            "cpu": { "$ref": "#/$defs/cpuActuator" },
            "limiter": { "$ref": "#/$defs/limiterActuator" },
            "external": {
              "description": "Third-party actuator processes that `cage run` starts and supervises like its own (docs/protocol.md, section External actuators).",
              "type": "array",
              "maxItems": 16,
              "items": { "$ref": "#/$defs/externalActuator" }
            }
          }
        },
        "influx": { "$ref": "#/$defs/influx" }
      }
    },
    "influx": {
      "description": `History in InfluxDB 1.x: the pipeline writes aggregates and actuator decisions/state. An object, true (all defaults) or false / omitted (off). docs/config.md, section agent.influx.`,
      "type": ["object", "boolean"],
      "additionalProperties": false,
      "properties": {
        "url": {
          "description": `InfluxDB HTTP API base URL. Default ${DEFAULT_INFLUX.url}.`,
          "type": "string",
          "pattern": "^https?://[^/?#]+/?$",
          "x-error": "must be an http:// or https:// URL with no path, e.g. http://127.0.0.1:8086"
        },
        "username": {
          "description": "User to authenticate as (InfluxDB with auth-enabled); needs passwordFile. Default: no authentication.",
          "type": "string",
          "minLength": 1
        },
        "passwordFile": {
          "description": "File holding the user's password (one line; a trailing newline is ignored), read at start, e.g. a systemd credential. Needs username.",
          "type": "string",
          "pattern": "^/(?!(.*/)?\\.\\.(/|$))",
          "x-error": "must be an absolute path without '..' segments"
        },
        "database": {
          "description": `Database, created at start if missing. Default ${DEFAULT_INFLUX.database}.`,
          "type": "string",
          "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$",
          "x-error": "must be 1-64 letters, digits or '_', not starting with a digit"
        },
        "retention": {
          "description": `How long full-resolution points are kept (retention policy raw). InfluxQL duration. Default ${DEFAULT_INFLUX.retention}.`,
          "$ref": "#/$defs/influxDuration"
        },
        "downsampleEvery": {
          "description": `Continuous queries average (and max) the raw points over this interval into the downsampled policy. Default ${DEFAULT_INFLUX.downsampleEvery}.`,
          "$ref": "#/$defs/influxDuration"
        },
        "downsampledRetention": {
          "description": `How long downsampled points and actuator decisions are kept (retention policy downsampled). Default ${DEFAULT_INFLUX.downsampledRetention}.`,
          "$ref": "#/$defs/influxDuration"
        },
        "batchPoints": {
          "description": `Points per write request at most. Default ${DEFAULT_INFLUX.batchPoints}.`,
          "type": "integer",
          "minimum": 1,
          "maximum": 100000
        },
        "flushMs": {
          "description": `A partly filled batch is written after this long. Default ${DEFAULT_INFLUX.flushMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 600000
        },
        "bufferPoints": {
          "description": `Points held in the on-disk spool (agent.stateDir/influx-spool) until InfluxDB has them; beyond this the oldest are dropped (logged, cage_history_points_dropped_total). Default ${DEFAULT_INFLUX.bufferPoints}.`,
          "type": "integer",
          "minimum": 1,
          "maximum": 10000000
        },
        "bufferSize": {
          "description": `Bytes of records held in the on-disk spool; beyond this the oldest are dropped like beyond bufferPoints. Default ${DEFAULT_INFLUX.bufferBytes / MiB}MiB.`,
          "$ref": "#/$defs/size"
        },
        "fsyncMs": {
          "description": `Spooled points are fsynced at least this often and at every segment roll: a power loss loses at most this much history. Default ${DEFAULT_INFLUX.fsyncMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 60000
        },
        "retryMinMs": {
          "description": `First retry delay after a failed write; doubles per failure up to retryMaxMs. Default ${DEFAULT_INFLUX.retryMinMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 600000
        },
        "retryMaxMs": {
          "description": `Longest retry delay. Default ${DEFAULT_INFLUX.retryMaxMs}.`,
          "type": "integer",
          "minimum": 10,
          "maximum": 3600000
        },
        "timeoutMs": {
          "description": `One HTTP request to InfluxDB gives up after this long. Default ${DEFAULT_INFLUX.timeoutMs}.`,
          "type": "integer",
          "minimum": 100,
          "maximum": 600000
        }
      }
    },
    "influxDuration": {
      "type": "string",
      "pattern": "^[1-9][0-9]{0,5}(m|h|d|w)$",
      "x-error": "must be an InfluxQL duration: a whole number and m, h, d or w (e.g. 30m, 7d, 52w)"
    },
    "externalActuator": {
      "type": "object",
      "additionalProperties": false,
      "required": ["name", "command"],
      "properties": {
        "name": {
          "description": "The actuator's name: its processes are supervised as actuator-NAME, and it binds ipc://RUNTIME_DIR/actuator-NAME.sock. Not cpu, limiter or balloon.",
          "type": "string",
          "pattern": "^(?!(cpu|limiter|balloon)$)[a-z][a-z0-9-]{0,31}$",
          "x-error": "must be 1-32 lower-case letters, digits or '-', starting with a letter, and not cpu, limiter or balloon"
        },
        "command": {
          "description": "The program: an absolute path, or a bare name looked up in PATH.",
          "type": "string",
          "pattern": "^([A-Za-z0-9_.+-]+|/(?!(.*/)?\\.\\.(/|$)).*[^/])$",
          "x-error": "must be an absolute path without '..' segments, or a bare program name looked up in PATH"
        },
        "args": { "description": "Its arguments.", "type": "array", "maxItems": 64, "items": { "type": "string", "maxLength": 4096 } },
        "env": {
          "description": "Extra environment variables (the OFFLOADCAGE_* ones the agent sets win).",
          "type": "object",
          "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$" },
          "additionalProperties": { "type": "string", "maxLength": 4096 }
        },
        "stopTimeoutMs": {
          "description": `How long it may take to restore and exit after SIGTERM before it is killed, ms. Default ${DEFAULT_EXTERNAL_ACTUATOR_STOP_TIMEOUT_MS}.`,
          "type": "integer",
          "minimum": 100,
          "maximum": 120000
        }
      }
    },
    "balloonActuator": {
      "description": "The balloon actuator (docs/balloon.md): moves the IDS's memory from the VM to the host.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "dryRun": { "description": `Decide and log, never touch a VM. Default ${DEFAULT_BALLOON_ACTUATOR.dryRun}.`, "type": "boolean" },
        "periodMs": { "description": `How often targets are recomputed and act.state is published, ms. Default ${DEFAULT_BALLOON_ACTUATOR.periodMs}.`, "type": "integer", "minimum": 50, "maximum": 60000 },
        "staleAfterMs": { "description": `A cage without an aggregate for this long gets its fail-safe target, ms. Default ${DEFAULT_BALLOON_ACTUATOR.staleAfterMs}.`, "type": "integer", "minimum": 100, "maximum": 3600000 },
        "guardianStartTimeoutMs": { "description": `How long the actuator waits for its restore guardian (a second node process) to start before it gives up and exits, ms. Default ${DEFAULT_GUARDIAN_START_TIMEOUT_MS}.`, "type": "integer", "minimum": 1000, "maximum": 3600000 },
        "maxStep": { "description": `Largest change of a VM's target in one move. Default ${DEFAULT_BALLOON_ACTUATOR.maxStepBytes / MiB}MiB.`, "$ref": "#/$defs/size" },
        "hysteresis": { "description": `Desired changes smaller than this are not applied, except to land on base or floor. Default ${DEFAULT_BALLOON_ACTUATOR.hysteresisBytes / MiB}MiB.`, "$ref": "#/$defs/size" },
        "minMoveIntervalMs": { "description": `Rate limit: at most one move per cage per this many ms. Default ${DEFAULT_BALLOON_ACTUATOR.minMoveIntervalMs}.`, "type": "integer", "minimum": 0, "maximum": 3600000 },
        "reverseHoldMs": { "description": `A move against the direction of the previous one waits until this long after it, so oscillation is damped while a step in one direction goes at once, ms. Default ${DEFAULT_BALLOON_ACTUATOR.reverseHoldMs}.`, "type": "integer", "minimum": 0, "maximum": 3600000 },
        "actOnAggregate": { "description": `Recompute a cage's target on each of its aggregates, not only every periodMs. Default ${DEFAULT_BALLOON_ACTUATOR.actOnAggregate}.`, "type": "boolean" },
        "stuckAfterMs": { "description": `A balloon that has not moved toward its target for this long is stuck, ms. Default ${DEFAULT_BALLOON_ACTUATOR.stuckAfterMs}.`, "type": "integer", "minimum": 100, "maximum": 3600000 },
        "stuckRetarget": { "description": `While stuck, a new target must differ from the stuck one by at least this to be pushed. Default ${DEFAULT_BALLOON_ACTUATOR.stuckRetargetBytes / MiB}MiB.`, "$ref": "#/$defs/size" },
        "tolerance": { "description": `|actual - target| within this counts as reached. Default ${DEFAULT_BALLOON_ACTUATOR.toleranceBytes / MiB}MiB.`, "$ref": "#/$defs/size" },
        "xlPath": {
          "description": `The xl command: xl (looked up in PATH) or an absolute path. Default ${DEFAULT_BALLOON_ACTUATOR.xlPath}.`,
          "type": "string",
          "pattern": "^(xl|/(?!(.*/)?\\.\\.(/|$)).*[^/])$",
          "x-error": "must be xl (looked up in PATH) or an absolute path without '..' segments"
        },
        "virshPath": {
          "description": `The virsh command: virsh (looked up in PATH) or an absolute path. Default ${DEFAULT_BALLOON_ACTUATOR.virshPath}.`,
          "type": "string",
          "pattern": "^(virsh|/(?!(.*/)?\\.\\.(/|$)).*[^/])$",
          "x-error": "must be virsh (looked up in PATH) or an absolute path without '..' segments"
        },
        "commandTimeoutMs": { "description": `Timeout of one xl/virsh/QMP command, ms. Default ${DEFAULT_BALLOON_ACTUATOR.commandTimeoutMs}.`, "type": "integer", "minimum": 100, "maximum": 600000 },
        "dom0": {
          "description": "Xen: dom0's target = base + the memory the Xen cages gave up, at most max. Omitted: dom0 is not touched.",
          "type": "object",
          "additionalProperties": false,
          "required": ["base", "max"],
          "properties": {
            "base": { "$ref": "#/$defs/size" },
            "max": { "$ref": "#/$defs/size" }
          }
        }
      }
    },
    "cage": {
      "type": "object",
      "required": ["name", "vm", "cpu"],
      "additionalProperties": false,
      "properties": {
        "name": {
          "description": "Unique cage name; used in metric labels and cgroup names.",
          "type": "string",
          "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
          "x-error": "must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        },
        "vm": { "$ref": "#/$defs/vm" },
        "ids": {
          "description": "What is charged to this cage as its IDS: process matchers, and whole IDS-VMs ({ vm: {...} }) whose whole host CPU is charged and held at idsCap (docs/config.md). Default: none.",
          "type": "array",
          "items": { "$ref": "#/$defs/idsEntry" }
        },
        "cpu": { "$ref": "#/$defs/cpu" },
        "memory": { "$ref": "#/$defs/memory" },
        "units": {
          "description": "systemd units of this cage (docs/cgroups.md). The actuators then set the unit's own properties (systemctl set-property --runtime) instead of moving its processes into the agent's groups.",
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "ids": { "description": "The IDS's unit, e.g. aide.service: the limiter sets its CPUQuota, page cache attribution tracks its cgroup.", "$ref": "#/$defs/systemdUnit" },
            "vm": { "description": "The VM's unit (a scope or service), e.g. machine-qemu\\x2d1\\x2dvm.scope: the CPU actuator sets its CPUQuota and CPUWeight, the balloon (backend auto or systemd) its MemoryHigh.", "$ref": "#/$defs/systemdUnit" }
          }
        }
      }
    },
    "systemdUnit": {
      "type": "string",
      "pattern": "^[A-Za-z0-9:_@\\\\][A-Za-z0-9:_.@\\\\-]{0,240}\\.(service|scope|slice)$",
      "x-error": "must be a systemd unit name ending in .service, .scope or .slice (letters, digits, ':', '_', '.', '@', backslash, '-'; not starting with '-'), e.g. aide.service"
    },
    "vm": {
      "type": "object",
      "required": ["kind"],
      "discriminator": { "propertyName": "kind" },
      "oneOf": [
        {
          "properties": {
            "kind": { "const": "process" },
            "match": { "$ref": "#/$defs/matcherList" }
          },
          "required": ["kind", "match"],
          "additionalProperties": false
        },
        {
          "properties": {
            "kind": { "const": "cgroup" },
            "path": { "$ref": "#/$defs/cgroupPath" }
          },
          "required": ["kind", "path"],
          "additionalProperties": false
        },
        {
          "properties": {
            "kind": { "const": "qemu" },
            "match": { "$ref": "#/$defs/matcherList" },
            "qmpSocket": {
              "type": "string",
              "pattern": "^/(?!(.*/)?\\.\\.(/|$))",
              "x-error": "must be an absolute path to the QMP UNIX socket, without '..' segments"
            }
          },
          "required": ["kind", "match", "qmpSocket"],
          "additionalProperties": false
        },
        {
          "properties": {
            "kind": { "const": "xen" },
            "domain": {
              "description": "Xen domain name or numeric domain id.",
              "type": ["string", "integer"],
              "minLength": 1,
              "minimum": 0
            }
          },
          "required": ["kind", "domain"],
          "additionalProperties": false
        },
        {
          "properties": {
            "kind": { "const": "libvirt" },
            "domain": {
              "description": "libvirt domain name or UUID; the agent follows its QEMU process across restarts (docs/libvirt.md).",
              "type": "string",
              "pattern": "^[A-Za-z0-9_][A-Za-z0-9._:+-]{0,127}$",
              "x-error": "must be a libvirt domain name or UUID: letters, digits, '.', '_', ':', '+', '-', not starting with '-'"
            },
            "uri": {
              "description": "libvirt connection URI given to virsh -c. Default qemu:///system.",
              "type": "string",
              "pattern": "^[a-z][a-z0-9+]*://[^\\s]*$",
              "x-error": "must be a libvirt URI such as qemu:///system"
            }
          },
          "required": ["kind", "domain"],
          "additionalProperties": false
        }
      ]
    },
    "matcherList": {
      "type": "array",
      "minItems": 1,
      "items": { "$ref": "#/$defs/matcher" }
    },
    "matcher": {
      "description": "Every selector given must match (AND); a list of matchers matches any of them (OR).",
      "type": "object",
      "additionalProperties": false,
      "properties": MATCHER_PROPERTIES,
    },
    "idsEntry": {
      "description": "A process matcher, or { vm: {...} } alone: a whole IDS-VM (a vm of any kind) whose whole CPU is charged to the cage's IDS and capped at idsCap; a Xen IDS-VM with cr3From: helper is charged only for its IDS processes' CR3s.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        ...MATCHER_PROPERTIES,
        "vm": { "$ref": "#/$defs/vm" },
        "cr3From": {
          "description": "Xen IDS-VMs only: `helper` charges only the run time of the address spaces (CR3s) the IDS-VM's guest helper reports for its IDS processes (docs/xentrace.md); the rest of the IDS-VM's time is reported as its own (ids.idsVmOwnCpuPct), not the cage's.",
          "enum": ["helper"]
        }
      }
    },
    "userName": {
      "type": "string",
      "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\\$?$",
      "x-error": "must be a user name: letters, digits, '_', '.', '-' (at most 32), not starting with '.' or '-'"
    },
    "cgroupPath": {
      "type": "string",
      "pattern": "^/sys/fs/cgroup(/(?!\\.\\.(/|$))[^/]+)*/?$",
      "x-error": "must be a cgroup directory under /sys/fs/cgroup without '..' segments, e.g. /sys/fs/cgroup/memory/ids1 or /sys/fs/cgroup/unified/ids1"
    },
    "cpu": {
      "type": "object",
      "required": ["cap"],
      "additionalProperties": false,
      "properties": {
        "cap": {
          "description": "Cage cap (VM + IDS), % of one CPU; may exceed 100.",
          "type": "number",
          "exclusiveMinimum": 0,
          "maximum": 100000
        },
        "idsCap": {
          "description": "The IDS's own cap, % of one CPU; at most cap.",
          "type": "number",
          "exclusiveMinimum": 0,
          "maximum": 100000
        },
        "weight": {
          "description": "Relative CPU weight among cages, cgroup v2 cpu.weight scale (default 100).",
          "type": "integer",
          "minimum": 1,
          "maximum": 10000
        },
        "vmFloor": {
          "description": "CPU actuator: the VM's cap never goes below this, % of one CPU. Default 10% of cap.",
          "type": "number",
          "exclusiveMinimum": 0,
          "maximum": 100000
        },
        "vmCeiling": {
          "description": "CPU actuator: the VM's cap never goes above this, % of one CPU; at most cap. Default cap.",
          "type": "number",
          "exclusiveMinimum": 0,
          "maximum": 100000
        },
        "failsafeCap": {
          "description": "CPU actuator: the VM's cap while the cage's aggregates are stale, % of one CPU; within [vmFloor, vmCeiling]. Default vmCeiling (the whole cage).",
          "type": "number",
          "exclusiveMinimum": 0,
          "maximum": 100000
        },
        "backend": { "$ref": "#/$defs/cpuBackend" }
      }
    },
    "memory": {
      "type": "object",
      "required": ["base", "floor"],
      "additionalProperties": false,
      "properties": {
        "base": { "$ref": "#/$defs/size" },
        "floor": { "$ref": "#/$defs/size" },
        "failsafe": { "description": "Balloon target while the cage's aggregates are stale; within [floor, base]. Default base.", "$ref": "#/$defs/size" },
        "backend": { "description": `Balloon back end. auto: qemu -> qmp, xen -> xl, libvirt -> virsh, a VM with units.vm -> systemd (its MemoryHigh), cgroup -> cgroup; a process VM needs memory.cgroup or units.vm. Default ${DEFAULT_CAGE_BALLOON.backend}.`, "enum": ["auto", "qmp", "xl", "virsh", "cgroup", "systemd"] },
        "libvirtDomain": {
          "description": "libvirt domain name (backend virsh).",
          "type": "string",
          "pattern": "^[^\\s-][^\\s]*$",
          "x-error": "must be a libvirt domain name without whitespace, not starting with '-'"
        },
        "cgroup": { "description": "The VM's memory cgroup for backend cgroup (default: vm.path of a cgroup VM).", "$ref": "#/$defs/cgroupPath" },
        "cgroupV2File": { "description": `cgroup v2 file the target is written to. Default ${DEFAULT_CAGE_BALLOON.cgroupV2File}.`, "enum": ["memory.max", "memory.high"] }
      }
    },
    "cpuActuator": {
      "description": "The cage scheduler: VM cap = cage cap - IDS CPU, weights reduced likewise.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "dryRun": { "description": `Log and publish decisions; touch nothing. Default ${DEFAULT_CPU_ACTUATOR.dryRun}.`, "type": "boolean" },
        "periodMs": { "description": `Control period, ms. Default ${DEFAULT_ACTUATOR_PERIOD_MS}.`, "type": "integer", "minimum": 10, "maximum": 60000 },
        "staleAfterMs": { "description": `A cage whose last aggregate is older than this goes to its fail-safe, ms. Default ${DEFAULT_ACTUATOR_STALE_AFTER_MS}.`, "type": "integer", "minimum": 50, "maximum": 3600000 },
        "guardianStartTimeoutMs": { "description": `How long the actuator waits for its restore guardian (a second node process) to start before it gives up and exits, ms. Default ${DEFAULT_GUARDIAN_START_TIMEOUT_MS}.`, "type": "integer", "minimum": 1000, "maximum": 3600000 },
        "hostCapacityPct": { "description": "CPU capacity that the cage weights share, % of one CPU. Default: online CPUs x 100.", "type": "number", "exclusiveMinimum": 0, "maximum": 100000 },
        "minChangePct": { "description": `A cap change smaller than this many points is not applied. Default ${DEFAULT_CPU_ACTUATOR.minChangePct}.`, "type": "number", "minimum": 0, "maximum": 100 },
        "idsHoldMs": { "description": `The VM's cap leaves room for the IDS's highest CPU over this span, so a brief IDS pause does not hand the VM the whole cage, ms. Default ${DEFAULT_CPU_ACTUATOR.idsHoldMs}: the last period's IDS CPU (the paper's rule).`, "type": "integer", "minimum": 0, "maximum": 600000 },
        "actOnAggregate": { "description": `Act on each of a cage's aggregates (one per CPU window), not only every periodMs. Default ${DEFAULT_CPU_ACTUATOR.actOnAggregate}.`, "type": "boolean" }
      }
    },
    "limiterActuator": {
      "description": "The IDS limiter: keeps each cage's IDS under cpu.idsCap.",
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "dryRun": { "description": `Log and publish decisions; touch nothing. Default ${DEFAULT_LIMITER_ACTUATOR.dryRun}.`, "type": "boolean" },
        "periodMs": { "description": `Duty-cycle / control period, ms. Default ${DEFAULT_ACTUATOR_PERIOD_MS}.`, "type": "integer", "minimum": 10, "maximum": 60000 },
        "staleAfterMs": { "description": `A cage whose last aggregate is older than this goes to its fail-safe, ms. Default ${DEFAULT_ACTUATOR_STALE_AFTER_MS}.`, "type": "integer", "minimum": 50, "maximum": 3600000 },
        "guardianStartTimeoutMs": { "description": `How long the actuator waits for its restore guardian (a second node process) to start before it gives up and exits, ms. Default ${DEFAULT_GUARDIAN_START_TIMEOUT_MS}.`, "type": "integer", "minimum": 1000, "maximum": 3600000 },
        "mode": { "description": "cgroup (CFS quota on a cgroup holding the IDS; default) or sigstop (the paper's SIGSTOP/SIGCONT duty cycle).", "enum": ["cgroup", "sigstop"] },
        "failsafe": { "description": "With stale aggregates: hold (keep limiting the IDS PIDs last seen; default) or release (stop limiting).", "enum": ["hold", "release"] }
      }
    },
    "cpuBackend": {
      "description": "How the CPU actuator controls this cage's VM. Default: derived from vm.kind (docs/cpu-actuators.md).",
      "type": "object",
      "required": ["kind"],
      "discriminator": { "propertyName": "kind" },
      "oneOf": [
        {
          "properties": {
            "kind": { "const": "cgroup" },
            "path": { "$ref": "#/$defs/cgroupPath" }
          },
          "required": ["kind", "path"],
          "additionalProperties": false
        },
        {
          "properties": {
            "kind": { "const": "virsh" },
            "domain": {
              "description": "libvirt domain name.",
              "type": "string",
              "pattern": "^[A-Za-z0-9_][A-Za-z0-9._:+-]{0,127}$",
              "x-error": "must be a libvirt domain name: letters, digits, '.', '_', ':', '+', '-', not starting with '-'"
            },
            "uri": {
              "description": "libvirt connection URI given to virsh -c. Default: virsh's own default.",
              "type": "string",
              "pattern": "^[a-z][a-z0-9+]*://[^\\s]*$",
              "x-error": "must be a libvirt URI such as qemu:///system"
            }
          },
          "required": ["kind", "domain"],
          "additionalProperties": false
        }
      ]
    },
    "size": {
      "description": "Bytes as an integer, or a string: a number and a unit (B, KiB, MiB, GiB, TiB = powers of 1024; KB, MB, GB, TB = powers of 1000; K, M, G, T = powers of 1024 as in cgroup files).",
      "type": ["integer", "string"],
      "minimum": 0,
      "pattern": "^[0-9]+(\\.[0-9]+)? ?(B|KiB|MiB|GiB|TiB|KB|MB|GB|TB|K|M|G|T)?$",
      "x-error": "must be a size: bytes as an integer or a string like 512MiB (units B, KiB, MiB, GiB, TiB, KB, MB, GB, TB, K, M, G, T)"
    }
  }
} as const;

type Defs = SchemaDefs<typeof CONFIG_SCHEMA>;

/** The cage file as written, once the schema accepted it. */
export type RawConfig = FromSchema<typeof CONFIG_SCHEMA, Defs>;
export type RawCage = FromSchema<Defs["cage"], Defs>;
export type RawVm = FromSchema<Defs["vm"], Defs>;
export type RawMatcher = FromSchema<Defs["matcher"], Defs>;
export type RawIdsEntry = FromSchema<Defs["idsEntry"], Defs>;
export type RawCpu = FromSchema<Defs["cpu"], Defs>;
export type RawCpuBackend = FromSchema<Defs["cpuBackend"], Defs>;
export type RawMemory = FromSchema<Defs["memory"], Defs>;
export type RawSize = FromSchema<Defs["size"], Defs>;
export type RawBalloonActuator = FromSchema<Defs["balloonActuator"], Defs>;
export type RawExternalActuator = FromSchema<Defs["externalActuator"], Defs>;
export type RawCpuActuator = FromSchema<Defs["cpuActuator"], Defs>;
export type RawLimiterActuator = FromSchema<Defs["limiterActuator"], Defs>;
export type RawInflux = FromSchema<Defs["influx"], Defs>;

/** The published copy of CONFIG_SCHEMA: dist/config/configSchema.js → docs/config.schema.json; also works from the source tree. */
export function configSchemaPath(): string {
  const candidates = ["../../docs/config.schema.json", "../docs/config.schema.json"].map((rel) =>
    fileURLToPath(new URL(rel, import.meta.url)),
  );
  return candidates.find((p) => existsSync(p)) ?? (candidates[0] as string);
}

/** The text docs/config.schema.json must hold. */
export function publishedSchemaText(): string {
  return `${JSON.stringify(CONFIG_SCHEMA, null, 2)}\n`;
}
