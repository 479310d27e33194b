import type { CommandDefinition } from "../command.js";
import { defineCommand } from "../command.js";
import { COMMAND_GROUPS, type CommandGroup, isCommandGroup } from "../command-groups.js";
import { globalFlags } from "../common-flags.js";
import { UsageError } from "../errors.js";
import type { FlagTable } from "../flags.js";

/** Shells `vmm completion` writes scripts for. */
export const completionShells = ["bash", "zsh", "fish"] as const;
type Shell = (typeof completionShells)[number];

/**
 * Creates `vmm completion SHELL`. The command list is passed in (it includes
 * this command, so it cannot be imported here).
 */
export function createCompletionCommand(all: () => readonly CommandDefinition[]) {
  return defineCommand({
    names: ["completion"],
    summary: "Print a shell completion script (bash, zsh or fish)",
    usage: "completion bash|zsh|fish",
    description:
      "Load it with:\n" +
      "  bash:  source <(vmm completion bash)\n" +
      "  zsh:   source <(vmm completion zsh)\n" +
      "  fish:  vmm completion fish | source\n" +
      "Sandbox and snapshot ids and image references complete by asking the daemon (vmm list -q).",
    flags: {},
    args: { positionals: ["SHELL"], rest: "none", complete: completionShells },
    offline: true,
    async handler(_ctx, { positionals }) {
      const shell = positionals[0]!;
      if (!(completionShells as readonly string[]).includes(shell)) {
        throw new UsageError(`completion wants bash, zsh or fish, got "${shell}"`);
      }
      return { exitCode: 0, stdout: completionScript(shell as Shell, all()) };
    },
  });
}

/** A completion model derived from the command table: what each command path completes. */
interface Entry {
  /** "create", "snapshot create", … (aliases included as their own entries). */
  readonly path: string;
  readonly flags: readonly string[];
  /** Flags that take a value (the next word is not completed as a command word). */
  readonly valueFlags: readonly string[];
  /** Choices of a flag's value, by flag ("--state" → states). */
  readonly choices: Readonly<Record<string, readonly string[]>>;
  readonly arg: "sandbox" | "snapshot" | "image" | readonly string[] | undefined;
}

function entries(all: readonly CommandDefinition[]): Entry[] {
  const out: Entry[] = [];
  for (const cmd of all) {
    const table: FlagTable = { ...globalFlags, ...cmd.flags };
    const flags: string[] = [];
    const valueFlags: string[] = [];
    const choices: Record<string, readonly string[]> = {};
    for (const [name, spec] of Object.entries(table)) {
      const forms = [`--${name}`, ...(spec.short ? [`-${spec.short}`] : [])];
      flags.push(...forms);
      if (spec.type === "string") valueFlags.push(...forms);
      if (spec.choices) for (const f of forms) choices[f] = spec.choices;
    }
    for (const path of cmd.names)
      out.push({ path, flags, valueFlags, choices, arg: cmd.args.complete });
  }
  return out;
}

/** The completion script for one shell, generated from the command table. */
export function completionScript(shell: Shell, all: readonly CommandDefinition[]): string {
  const es = entries(all);
  if (shell === "bash") return bashScript(es);
  if (shell === "zsh") return zshScript(es, all);
  return fishScript(es, all);
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function argWords(arg: Entry["arg"]): string {
  if (arg === "sandbox") return "$(vmm list -q 2>/dev/null)";
  if (arg === "snapshot") return "$(vmm snapshot list -q 2>/dev/null)";
  if (arg === "image") return "$(vmm image list -q 2>/dev/null)";
  return arg ? arg.join(" ") : "";
}

const GROUP_NAMES = Object.keys(COMMAND_GROUPS) as CommandGroup[];

/** A group's title as a one-line description ("Manage snapshots"). */
const groupSummary = (g: CommandGroup) => COMMAND_GROUPS[g].title.replace(/\.$/, "");

/** The group a command belongs to, or undefined for a top-level command. */
function groupOf(name: string): CommandGroup | undefined {
  const first = name.split(" ")[0]!;
  return name.includes(" ") && isCommandGroup(first) ? first : undefined;
}

/** Shell test "$var" is one of the groups: `[[ "$p" == snapshot || "$p" == image ]]`. */
const isGroupTest = (v: string) => GROUP_NAMES.map((g) => `"$${v}" == ${g}`).join(" || ");

function topWords(es: readonly Entry[]): string[] {
  return [...new Set(es.map((e) => e.path.split(" ")[0]!)), "help"];
}

function bashScript(es: readonly Entry[]): string {
  const groupCases = GROUP_NAMES.map((g) => {
    const subs = es.filter((e) => groupOf(e.path) === g).map((e) => e.path.slice(g.length + 1));
    return `    ${g}) COMPREPLY=($(compgen -W ${q(subs.join(" "))} -- "$cur")) ;;`;
  }).join("\n");
  const cases = es
    .map((e) => {
      const choiceCases = Object.entries(e.choices)
        .map(
          ([f, c]) =>
            `        ${f}) COMPREPLY=($(compgen -W ${q(c.join(" "))} -- "$cur")); return ;;`,
        )
        .join("\n");
      return [
        `    ${q(e.path)})`,
        `      case "$prev" in`,
        choiceCases,
        `        ${e.valueFlags.join("|")}) return ;;`,
        "      esac",
        `      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W ${q(e.flags.join(" "))} -- "$cur"))`,
        `      else COMPREPLY=($(compgen -W "${argWords(e.arg)}" -- "$cur")); fi ;;`,
      ]
        .filter((l) => l !== "")
        .join("\n");
    })
    .join("\n");
  return `# bash completion for vmm (generated by 'vmm completion bash')
_vmm() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path="" i w skip=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ -n "$skip" ]]; then skip=""; continue; fi
    case "$w" in
      --) return ;;
      --socket|--address|--token|--ca|-o|--output) skip=1 ;;
      -*) ;;
      *)
        if [[ -z "$path" ]]; then path="$w"
        elif [[ ${isGroupTest("path")} ]]; then path="$path $w"
        else break
        fi ;;
    esac
  done
  case "$path" in
    "") COMPREPLY=($(compgen -W ${q(topWords(es).join(" "))} -- "$cur")) ;;
${groupCases}
    help) COMPREPLY=($(compgen -W ${q(topWords(es).join(" "))} -- "$cur")) ;;
${cases}
  esac
}
complete -F _vmm vmm
`;
}

function zshScript(es: readonly Entry[], all: readonly CommandDefinition[]): string {
  const describe = (c: CommandDefinition, n: string) => `${n}:${c.summary.replace(/[:']/g, " ")}`;
  const top = all
    .filter((c) => groupOf(c.names[0]!) === undefined)
    .flatMap((c) => c.names.map((n) => describe(c, n)));
  top.push(...GROUP_NAMES.map((g) => `${g}:${groupSummary(g)}`), "help:Show help");
  const subArrays = GROUP_NAMES.map((g) => {
    const subs = all
      .filter((c) => groupOf(c.names[0]!) === g)
      .flatMap((c) => c.names.map((n) => describe(c, n.slice(g.length + 1))));
    return `  local -a subs_${g}\n  subs_${g}=(${subs.map(q).join(" ")})`;
  }).join("\n");
  const groupCases = GROUP_NAMES.map((g) => `    ${g}) _describe '${g} command' subs_${g} ;;`).join(
    "\n",
  );
  const cases = es
    .map((e) => {
      const choiceCases = Object.entries(e.choices)
        .map(([f, c]) => `        ${f}) compadd -- ${c.join(" ")}; return ;;`)
        .join("\n");
      return [
        `    ${q(e.path)})`,
        `      case "$prev" in`,
        choiceCases,
        `        ${e.valueFlags.join("|")}) _files; return ;;`,
        "      esac",
        `      if [[ "$cur" == -* ]]; then compadd -- ${e.flags.join(" ")}`,
        `      else compadd -- ${argWords(e.arg)}; fi ;;`,
      ]
        .filter((l) => l !== "")
        .join("\n");
    })
    .join("\n");
  return `#compdef vmm
# zsh completion for vmm (generated by 'vmm completion zsh')
_vmm() {
  local cur="\${words[CURRENT]}" prev="\${words[CURRENT-1]}"
  local path_="" i w skip=""
  local -a top
  top=(${top.map(q).join(" ")})
${subArrays}
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    if [[ -n "$skip" ]]; then skip=""; continue; fi
    case "$w" in
      --) return ;;
      --socket|--address|--token|--ca|-o|--output) skip=1 ;;
      -*) ;;
      *)
        if [[ -z "$path_" ]]; then path_="$w"
        elif [[ ${isGroupTest("path_")} ]]; then path_="$path_ $w"
        else break
        fi ;;
    esac
  done
  case "$path_" in
    "") _describe 'command' top ;;
${groupCases}
    help) _describe 'command' top ;;
${cases}
  esac
}
if [[ "\${funcstack[1]}" == _vmm ]]; then _vmm "$@"; else compdef _vmm vmm; fi
`;
}

function fishScript(es: readonly Entry[], all: readonly CommandDefinition[]): string {
  const lines = [
    "# fish completion for vmm (generated by 'vmm completion fish')",
    "complete -c vmm -f",
  ];
  const tops = all.filter((c) => groupOf(c.names[0]!) === undefined);
  const topNames = [...tops.flatMap((c) => c.names), ...GROUP_NAMES, "help"];
  const atTop = `not __fish_seen_subcommand_from ${topNames.join(" ")}`;
  for (const c of tops) {
    for (const n of c.names)
      lines.push(`complete -c vmm -n "${atTop}" -a ${q(n)} -d ${q(c.summary)}`);
  }
  for (const g of GROUP_NAMES) {
    lines.push(`complete -c vmm -n "${atTop}" -a ${g} -d ${q(groupSummary(g))}`);
    const members = all.filter((c) => groupOf(c.names[0]!) === g);
    const subNames = members.flatMap((c) => c.names.map((n) => n.slice(g.length + 1)));
    for (const c of members) {
      for (const n of c.names) {
        lines.push(
          `complete -c vmm -n "__fish_seen_subcommand_from ${g}; and not __fish_seen_subcommand_from ${subNames.join(" ")}" -a ${q(n.slice(g.length + 1))} -d ${q(c.summary)}`,
        );
      }
    }
  }
  for (const e of es) {
    const words = e.path.split(" ");
    const cond = words.map((w) => `__fish_seen_subcommand_from ${w}`).join("; and ");
    for (const f of e.flags.filter((f) => f.startsWith("--"))) {
      const choices = e.choices[f];
      const takes = e.valueFlags.includes(f) ? " -r" : "";
      const a = choices ? ` -a ${q(choices.join(" "))}` : "";
      lines.push(`complete -c vmm -n ${q(cond)} -l ${f.slice(2)}${takes}${a}`);
    }
    if (e.arg !== undefined) lines.push(`complete -c vmm -n ${q(cond)} -a ${q(argWords(e.arg))}`);
  }
  return `${lines.join("\n")}\n`;
}
