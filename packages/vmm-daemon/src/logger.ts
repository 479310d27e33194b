import pino, { type Logger } from "pino";
import { build as prettyStream } from "pino-pretty";

/** Options of `createRootLogger`. */
export interface RootLoggerOptions {
  readonly level: string;
  /** auto = pretty when stderr is a TTY, JSON otherwise. */
  readonly format: "auto" | "json" | "pretty";
  /** A file the logs are appended to instead of stderr (JSON; `format` is then ignored). */
  readonly file?: string;
}

/** The daemon's root logger (the only one built; every other package gets a child). Logs go to stderr. */
export function createRootLogger(options: RootLoggerOptions): Logger {
  const redact = { paths: ["*.authorization", "*.auth_token", "*.token"], censor: "<redacted>" };
  if (options.file !== undefined) {
    return pino(
      { level: options.level, redact },
      pino.destination({ dest: options.file, sync: true }),
    );
  }
  const pretty = options.format === "pretty" || (options.format === "auto" && process.stderr.isTTY);
  if (pretty) {
    return pino(
      { level: options.level, redact },
      prettyStream({ destination: 2, colorize: true, sync: true }),
    );
  }
  return pino({ level: options.level, redact }, pino.destination({ fd: 2, sync: false }));
}
