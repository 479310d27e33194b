import type { CommandDefinition } from "../command.js";
import { createCompletionCommand } from "./completion.js";
import { createCommand } from "./create.js";
import { eventsCommand } from "./events.js";
import { execCommand } from "./exec.js";
import { cpCommand, watchCommand } from "./files.js";
import { inspectCommand } from "./inspect.js";
import { listCommand } from "./list.js";
import { pauseCommand, resumeCommand } from "./pause.js";
import { removeCommand } from "./remove.js";
import { runCommand } from "./run.js";
import {
  snapshotCreateCommand,
  snapshotDeleteCommand,
  snapshotListCommand,
  snapshotRestoreCommand,
} from "./snapshot.js";
import { stopCommand } from "./stop.js";
import { versionCommand } from "./version.js";

/** Every command, in the order `vmm --help` lists them. */
export const commands: readonly CommandDefinition[] = [
  createCommand,
  listCommand,
  inspectCommand,
  eventsCommand,
  runCommand,
  execCommand,
  cpCommand,
  watchCommand,
  pauseCommand,
  resumeCommand,
  stopCommand,
  removeCommand,
  snapshotCreateCommand,
  snapshotListCommand,
  snapshotRestoreCommand,
  snapshotDeleteCommand,
  versionCommand,
  createCompletionCommand(() => commands),
];
