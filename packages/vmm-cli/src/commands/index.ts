import type { CommandDefinition } from "../command.js";
import { createCompletionCommand } from "./completion.js";
import { createCommand } from "./create.js";
import { doctorCommand } from "./doctor.js";
import { eventsCommand } from "./events.js";
import { execCommand } from "./exec.js";
import { cpCommand, watchCommand } from "./files.js";
import { imageListCommand, imagePullCommand, imageRemoveCommand } from "./image.js";
import { inspectCommand } from "./inspect.js";
import { listCommand } from "./list.js";
import { policyCommand, portCommand } from "./network.js";
import { pauseCommand, resumeCommand } from "./pause.js";
import { killCommand, psCommand } from "./processes.js";
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
  psCommand,
  killCommand,
  cpCommand,
  watchCommand,
  pauseCommand,
  resumeCommand,
  portCommand,
  policyCommand,
  stopCommand,
  removeCommand,
  snapshotCreateCommand,
  snapshotListCommand,
  snapshotRestoreCommand,
  snapshotDeleteCommand,
  imagePullCommand,
  imageListCommand,
  imageRemoveCommand,
  versionCommand,
  doctorCommand,
  createCompletionCommand(() => commands),
];
