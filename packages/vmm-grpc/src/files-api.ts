import type { FileEvent, FileInfo, WriteFileSpec } from "@vmm/core";

/** What the SandboxFilesService needs from vmm-core (SandboxFiles implements it). */
export interface FilesApi {
  stat(id: string, path: string, signal: AbortSignal): Promise<FileInfo>;
  makeDir(
    id: string,
    path: string,
    options: { mode?: number; parents?: boolean },
    signal: AbortSignal,
  ): Promise<FileInfo>;
  removePath(
    id: string,
    path: string,
    options: { recursive?: boolean },
    signal: AbortSignal,
  ): Promise<void>;
  listDir(id: string, path: string, depth: number, signal: AbortSignal): Promise<FileInfo[]>;
  writeFile(
    id: string,
    spec: WriteFileSpec,
    data: AsyncIterable<Uint8Array>,
    signal: AbortSignal,
  ): Promise<FileInfo>;
  readFile(
    id: string,
    range: { path: string; offset: number; length: number; reuseChunks?: boolean },
    signal: AbortSignal,
  ): Promise<AsyncIterable<Uint8Array>>;
  watch(
    id: string,
    path: string,
    recursive: boolean,
    signal: AbortSignal,
  ): Promise<AsyncIterable<FileEvent>>;
}
