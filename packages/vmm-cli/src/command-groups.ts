/** Command groups: `vmm GROUP COMMAND` (the commands are those named "GROUP …"). */
export const COMMAND_GROUPS = {
  snapshot: { title: "Manage snapshots.", subcommands: "create, list, restore or delete" },
  image: { title: "Manage OCI images in the daemon's store.", subcommands: "pull, list or remove" },
} as const;

export type CommandGroup = keyof typeof COMMAND_GROUPS;

export function isCommandGroup(word: string): word is CommandGroup {
  return Object.hasOwn(COMMAND_GROUPS, word);
}
