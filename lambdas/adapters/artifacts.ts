import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { ArtifactStore } from '../core/ports.js';

/** Artifacts in an S3 bucket (server-side encrypted by the bucket's default). */
export class S3ArtifactStore implements ArtifactStore {
  constructor(
    private readonly s3: S3Client,
    private readonly bucket: string,
  ) {}

  async putJson(key: string, value: unknown): Promise<string> {
    return this.putText(key, JSON.stringify(value), 'application/json');
  }

  async getJson(key: string): Promise<unknown> {
    return JSON.parse(await this.getText(key));
  }

  async putText(key: string, text: string, contentType = 'text/plain; charset=utf-8'): Promise<string> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: text, ContentType: contentType }));
    return key;
  }

  where(key: string): string {
    return `s3://${this.bucket}/${key}`;
  }

  async getText(key: string): Promise<string> {
    const r = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
    if (!r.Body) throw new Error(`artifact ${key} is empty`);
    return r.Body.transformToString('utf8');
  }
}

/** Artifacts as files under a folder (local mode). Keys may not leave the folder. */
export class FsArtifactStore implements ArtifactStore {
  private readonly root: string;
  constructor(root: string) {
    this.root = resolve(root);
  }

  /** The file that holds `key`. @throws Error when the key would leave the folder */
  pathOf(key: string): string {
    const p = resolve(join(this.root, key));
    if (p !== this.root && !p.startsWith(this.root + sep)) throw new Error(`artifact key leaves the store: ${key}`);
    return p;
  }

  where(key: string): string {
    return this.pathOf(key);
  }

  async putJson(key: string, value: unknown): Promise<string> {
    return this.putText(key, `${JSON.stringify(value, null, 2)}\n`);
  }

  async getJson(key: string): Promise<unknown> {
    return JSON.parse(await this.getText(key));
  }

  // Synchronous file calls: the local runtime runs every Lambda on one event loop, where each
  // asynchronous call is several thread-pool round trips (mkdir, open, write, close) that a run's
  // artifacts wait for one after another; an artifact is small and the page cache answers at once.
  async putText(key: string, text: string): Promise<string> {
    const p = this.pathOf(key);
    const folder = dirname(p);
    if (!this.folders.has(folder)) {
      mkdirSync(folder, { recursive: true });
      // A long-lived server makes folders for every run: the set is a cache, not a record.
      if (this.folders.size >= 10_000) this.folders.clear();
      this.folders.add(folder);
    }
    try {
      writeFileSync(p, text, 'utf8');
    } catch (e) {
      // The folder was removed since (a cleared state folder): made again.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      mkdirSync(folder, { recursive: true });
      writeFileSync(p, text, 'utf8');
    }
    return key;
  }

  /** Folders made already (mkdir once per folder). */
  private readonly folders = new Set<string>();

  async getText(key: string): Promise<string> {
    return readFileSync(this.pathOf(key), 'utf8');
  }
}
