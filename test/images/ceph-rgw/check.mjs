// Verifies a running ceph-rgw test container with the AWS SDK v3, the way the
// gateway's S3 backend will talk to it, and probes Ceph 16 (Pacific) quirks.
//
//   mkdir -p /tmp/rgw-check && cd /tmp/rgw-check && npm init -y >/dev/null &&
//     npm install @aws-sdk/client-s3 @aws-sdk/lib-storage
//   cp check.mjs /tmp/rgw-check/ && node /tmp/rgw-check/check.mjs http://127.0.0.1:PORT [--bench]
//
// Environment: S3_ENDPOINT (instead of the argument), S3_ACCESS_KEY,
// S3_SECRET_KEY (defaults testaccess/testsecret, as in the image).
// Exit status 0 when every required check passed; quirks are reported, not failed.
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import {
  S3Client, CreateBucketCommand, HeadBucketCommand, PutObjectCommand, GetObjectCommand,
  HeadObjectCommand, DeleteObjectCommand, DeleteObjectsCommand, CopyObjectCommand,
  ListObjectsV2Command, CreateMultipartUploadCommand, UploadPartCommand, UploadPartCopyCommand,
  CompleteMultipartUploadCommand, AbortMultipartUploadCommand, ListMultipartUploadsCommand,
  ListPartsCommand, ListBucketsCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';

const args = process.argv.slice(2);
const bench = args.includes('--bench');
const endpoint = args.find((a) => a.startsWith('http')) ?? process.env.S3_ENDPOINT;
if (!endpoint) {
  console.error('usage: node check.mjs http://127.0.0.1:PORT [--bench]  (or S3_ENDPOINT=...)');
  process.exit(2);
}
const credentials = {
  accessKeyId: process.env.S3_ACCESS_KEY ?? 'testaccess',
  secretAccessKey: process.env.S3_SECRET_KEY ?? 'testsecret',
};
const base = { endpoint, region: 'us-east-1', forcePathStyle: true, credentials };
// Ceph 16 rejects the SDK's default flexible checksums sent as an aws-chunked
// trailer on streamed bodies (411 MissingContentLength): only send/validate
// checksums where an operation requires them.
const s3 = new S3Client({
  ...base,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const s3Default = new S3Client(base); // SDK defaults, only for the quirk probes

const MiB = 1024 * 1024;
const bucket = `check-${Date.now().toString(36)}`;
const failures = [];
const quirks = [];
const md5 = (buf) => createHash('md5').update(buf).digest('hex');
const multipartEtag = (buf, partSize) => {
  const parts = [];
  for (let off = 0; off < buf.length; off += partSize) {
    parts.push(createHash('md5').update(buf.subarray(off, off + partSize)).digest());
  }
  return `"${md5(Buffer.concat(parts))}-${parts.length}"`;
};
const body = async (res) => Buffer.from(await res.Body.transformToByteArray());
const errName = (e) => `${e.name} (HTTP ${e.$metadata?.httpStatusCode})`;
const encodeKey = (key) => key.split('/').map(encodeURIComponent).join('/');
const copySource = (key) => `${bucket}/${encodeKey(key)}`;

function assert(cond, msg) { if (!cond) throw new Error(msg); }
async function step(name, fn) {
  const t0 = performance.now();
  try {
    await fn();
    console.log(`ok    ${name} (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (e) {
    failures.push(name);
    console.log(`FAIL  ${name}: ${e.name === 'Error' ? e.message : errName(e) + ' ' + e.message}`);
  }
}
function quirk(text) { quirks.push(text); console.log(`quirk ${text}`); }
async function expectError(promise, names) {
  try { await promise; } catch (e) { if (names.includes(e.name) || names.includes(String(e.$metadata?.httpStatusCode))) return e; throw e; }
  throw new Error(`expected ${names.join('/')}, request succeeded`);
}

// ---------------------------------------------------------------- core checks
const small = Buffer.from('hello from check.mjs\n');
const big = randomBytes(64 * MiB);
let bigEtag;

await step('ListBuckets (auth works)', async () => {
  const r = await s3.send(new ListBucketsCommand({}));
  assert(Array.isArray(r.Buckets ?? []), 'no bucket list');
});

await step(`CreateBucket ${bucket} + HeadBucket`, async () => {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new HeadBucketCommand({ Bucket: bucket }));
});

await step('PutObject small (Buffer) + ETag = MD5', async () => {
  const r = await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: 'small.txt', Body: small, ContentType: 'text/plain',
    Metadata: { origin: 'check', 'x-thing': 'a b' },
  }));
  assert(r.ETag === `"${md5(small)}"`, `ETag ${r.ETag}`);
});

await step('PutObject streamed body (Readable + ContentLength)', async () => {
  await s3.send(new PutObjectCommand({
    Bucket: bucket, Key: 'streamed.bin', Body: Readable.from([small, small]), ContentLength: small.length * 2,
  }));
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed.bin' }));
  assert((await body(r)).equals(Buffer.concat([small, small])), 'content differs');
});

await step('PutObject empty object', async () => {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'empty', Body: Buffer.alloc(0) }));
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'empty' }));
  assert(h.ContentLength === 0 && h.ETag === `"${md5(Buffer.alloc(0))}"`, `len ${h.ContentLength} etag ${h.ETag}`);
});

await step('GetObject small + metadata/content-type round trip', async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small.txt' }));
  assert((await body(r)).equals(small), 'content differs');
  assert(r.ContentType === 'text/plain', `ContentType ${r.ContentType}`);
  assert(r.Metadata?.origin === 'check' && r.Metadata?.['x-thing'] === 'a b', `Metadata ${JSON.stringify(r.Metadata)}`);
});

await step('multipart 64 MiB via lib-storage Upload (8 MiB parts) + HEAD ETag', async () => {
  const up = new Upload({
    client: s3, params: { Bucket: bucket, Key: 'big.bin', Body: big }, partSize: 8 * MiB, queueSize: 4,
  });
  const res = await up.done();
  bigEtag = multipartEtag(big, 8 * MiB);
  if (res.ETag !== bigEtag) quirk(`CompleteMultipartUpload returned ETag ${JSON.stringify(res.ETag)} (expected ${bigEtag}); HEAD has the right one`);
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big.bin' }));
  assert(h.ETag === bigEtag, `HEAD ETag ${h.ETag} != ${bigEtag}`);
  assert(h.ContentLength === big.length, `HEAD ContentLength ${h.ContentLength}`);
});

await step('ranged GET (middle, suffix, open-ended) on the multipart object', async () => {
  const cases = [
    ['bytes=8388600-8388615', big.subarray(8388600, 8388616)], // crosses a part boundary
    ['bytes=-100', big.subarray(big.length - 100)],
    [`bytes=${big.length - 10}-`, big.subarray(big.length - 10)],
  ];
  for (const [Range, want] of cases) {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big.bin', Range }));
    assert((await body(r)).equals(want), `${Range}: content differs`);
    assert(r.ContentRange?.startsWith('bytes '), `${Range}: ContentRange ${r.ContentRange}`);
  }
  await expectError(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small.txt', Range: 'bytes=1000-2000' })), ['InvalidRange', '416']);
});

await step('full GET of the multipart object', async () => {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big.bin' }));
  assert((await body(r)).equals(big), 'content differs');
});

// Keys for listing: nested "dirs", spaces, unicode and URL-special characters.
const odd = ['dir with space/ü ñ 日本.txt', 'plus+sign.txt', 'percent%20lit.txt', 'amp&eq=q?h#.txt', 'tilde~ (1).txt', 'emoji 😀.txt'];
const listKeys = ['a/1', 'a/2', 'a/b/3', 'b/1', 'c', 'd', 'e/', 'f', ...odd.map((k) => `odd/${k}`)];
await step(`PUT ${listKeys.length} keys incl. spaces/unicode/+%&?#~ and GET them back`, async () => {
  await Promise.all(listKeys.map((Key) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `l/${Key}`, Body: Buffer.from(Key) }))));
  for (const Key of listKeys) {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `l/${Key}` }));
    assert((await body(r)).toString() === Key, `content of ${Key}`);
  }
});

async function listAll(params) {
  const keys = []; const prefixes = []; let token; let pages = 0;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ...params, ContinuationToken: token }));
    pages++;
    for (const c of r.Contents ?? []) keys.push(c.Key);
    for (const p of r.CommonPrefixes ?? []) prefixes.push(p.Prefix);
    const n = (r.Contents?.length ?? 0) + (r.CommonPrefixes?.length ?? 0);
    assert(r.KeyCount === n, `KeyCount ${r.KeyCount} != ${n}`);
    assert(!params.MaxKeys || n <= params.MaxKeys, `page of ${n} > MaxKeys`);
    assert(!r.IsTruncated || r.NextContinuationToken, 'truncated without NextContinuationToken');
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token && pages < 100);
  return { keys, prefixes, pages };
}
const same = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

await step('ListObjectsV2 Prefix+Delimiter="/" paginated with MaxKeys=2', async () => {
  const { keys, prefixes, pages } = await listAll({ Prefix: 'l/', Delimiter: '/', MaxKeys: 2 });
  assert(same(keys, ['l/c', 'l/d', 'l/f']), `keys ${JSON.stringify(keys)}`);
  assert(same(prefixes, ['l/a/', 'l/b/', 'l/e/', 'l/odd/']), `prefixes ${JSON.stringify(prefixes)}`);
  assert(pages === 4, `pages ${pages}`);
});

await step('ListObjectsV2 nested prefix + delimiter (l/a/) and no delimiter (all keys, MaxKeys=3)', async () => {
  const r1 = await listAll({ Prefix: 'l/a/', Delimiter: '/' });
  assert(same(r1.keys, ['l/a/1', 'l/a/2']) && same(r1.prefixes, ['l/a/b/']), `got ${JSON.stringify(r1)}`);
  const r2 = await listAll({ Prefix: 'l/', MaxKeys: 3 });
  assert(same(r2.keys, listKeys.map((k) => `l/${k}`)), `got ${JSON.stringify(r2.keys)}`);
});

await step('ListObjectsV2 keys with spaces/unicode/specials under a delimiter', async () => {
  const r = await listAll({ Prefix: 'l/odd/', Delimiter: '/' });
  assert(same(r.prefixes, ['l/odd/dir with space/']), `prefixes ${JSON.stringify(r.prefixes)}`);
  assert(same(r.keys, odd.filter((k) => !k.includes('/')).map((k) => `l/odd/${k}`)), `keys ${JSON.stringify(r.keys)}`);
  const r2 = await listAll({ Prefix: 'l/odd/dir with space/', Delimiter: '/' });
  assert(same(r2.keys, ['l/odd/dir with space/ü ñ 日本.txt']), `keys ${JSON.stringify(r2.keys)}`);
});

await step('ListObjectsV2 StartAfter', async () => {
  const r = await listAll({ Prefix: 'l/', StartAfter: 'l/d' });
  assert(same(r.keys, listKeys.filter((k) => `l/${k}` > 'l/d').map((k) => `l/${k}`)), `keys ${JSON.stringify(r.keys)}`);
  const r2 = await listAll({ Prefix: 'l/', Delimiter: '/', StartAfter: 'l/b/1' });
  assert(same(r2.keys, ['l/c', 'l/d', 'l/f']) && same(r2.prefixes, ['l/e/', 'l/odd/']), `got ${JSON.stringify(r2)}`);
});

await step('CopyObject (small, metadata kept) + CopyObject of the 64 MiB multipart object', async () => {
  const c = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'small-copy.txt', CopySource: copySource('small.txt') }));
  const copyEtag = c.CopyObjectResult?.ETag;
  assert(copyEtag?.replaceAll('"', '') === md5(small), `copy ETag ${copyEtag}`);
  if (copyEtag !== `"${md5(small)}"`) quirk(`CopyObjectResult.ETag is unquoted (${copyEtag}); HEAD/PUT ETags are quoted`);
  const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small-copy.txt' }));
  assert((await body(g)).equals(small) && g.Metadata?.origin === 'check', 'copy content/metadata');
  await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'big-copy.bin', CopySource: copySource('big.bin') }));
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'big-copy.bin' }));
  assert(h.ContentLength === big.length, `copy length ${h.ContentLength}`);
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big-copy.bin', Range: 'bytes=50000000-50000099' }));
  assert((await body(r)).equals(big.subarray(50000000, 50000100)), 'copy content differs');
  if (h.ETag !== bigEtag) quirk(`CopyObject of a multipart object: copy's ETag ${h.ETag} (source ${bigEtag})`);
});

await step('CopyObject with MetadataDirective=REPLACE', async () => {
  await s3.send(new CopyObjectCommand({
    Bucket: bucket, Key: 'small-copy.txt', CopySource: copySource('small-copy.txt'),
    MetadataDirective: 'REPLACE', Metadata: { replaced: 'yes' }, ContentType: 'application/x-test',
  }));
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small-copy.txt' }));
  assert(h.Metadata?.replaced === 'yes' && !h.Metadata?.origin && h.ContentType === 'application/x-test', JSON.stringify(h.Metadata));
});

await step('CopyObject of keys with spaces/unicode/specials (CopySource URL-encoded per segment)', async () => {
  for (const k of odd) {
    await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: `copy/${k}`, CopySource: copySource(`l/odd/${k}`) }));
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `copy/${k}` }));
    assert((await body(r)).toString() === `odd/${k}`, `copy of ${k}`);
  }
});

await step('HEAD: ETag, ContentLength, LastModified; missing key -> NotFound', async () => {
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small.txt' }));
  assert(h.ETag === `"${md5(small)}"` && h.ContentLength === small.length && h.LastModified instanceof Date, JSON.stringify(h));
  await expectError(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'nope' })), ['NotFound', '404']);
  await expectError(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'nope' })), ['NoSuchKey']);
});

await step('DeleteObject (+ deleting a missing key is a 204)', async () => {
  await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'small-copy.txt' }));
  await expectError(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'small-copy.txt' })), ['NotFound', '404']);
  const r = await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'never-existed' }));
  assert(r.$metadata.httpStatusCode === 204, `status ${r.$metadata.httpStatusCode}`);
});

await step('DeleteObjects (batch, incl. unicode keys)', async () => {
  const Objects = odd.map((k) => ({ Key: `copy/${k}` }));
  const r = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects } }));
  assert((r.Deleted?.length ?? 0) === Objects.length && !r.Errors?.length, JSON.stringify(r.Errors ?? r.Deleted));
  const l = await listAll({ Prefix: 'copy/' });
  assert(l.keys.length === 0, `left ${JSON.stringify(l.keys)}`);
});

await step('multipart by hand: ListMultipartUploads, ListParts, Abort', async () => {
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'aborted.bin' }));
  await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'aborted.bin', UploadId, PartNumber: 1, Body: big.subarray(0, 5 * MiB) }));
  const l1 = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  assert(l1.Uploads?.some((u) => u.UploadId === UploadId && u.Key === 'aborted.bin'), `uploads ${JSON.stringify(l1.Uploads)}`);
  const p = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'aborted.bin', UploadId }));
  assert(p.Parts?.length === 1 && p.Parts[0].Size === 5 * MiB, `parts ${JSON.stringify(p.Parts)}`);
  await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'aborted.bin', UploadId }));
  const l2 = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  assert(!l2.Uploads?.some((u) => u.UploadId === UploadId), 'upload still listed after abort');
  await expectError(s3.send(new ListPartsCommand({ Bucket: bucket, Key: 'aborted.bin', UploadId })), ['NoSuchUpload', '404']);
  await expectError(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'aborted.bin' })), ['NotFound', '404']);
});

await step('UploadPartCopy (ranges of the multipart object) + Complete', async () => {
  const Key = 'partcopy.bin';
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
  const ranges = [[0, 6 * MiB - 1], [10 * MiB, 12 * MiB - 1]];
  const Parts = [];
  for (const [i, [a, b]] of ranges.entries()) {
    const r = await s3.send(new UploadPartCopyCommand({
      Bucket: bucket, Key, UploadId, PartNumber: i + 1, CopySource: copySource('big.bin'), CopySourceRange: `bytes=${a}-${b}`,
    }));
    Parts.push({ PartNumber: i + 1, ETag: r.CopyPartResult.ETag });
  }
  const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts } }));
  const want = Buffer.concat(ranges.map(([a, b]) => big.subarray(a, b + 1)));
  const g = await s3.send(new GetObjectCommand({ Bucket: bucket, Key }));
  assert((await body(g)).equals(want), 'content differs');
  const h = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key }));
  const wantEtag = `"${md5(Buffer.concat(ranges.map(([a, b]) => createHash('md5').update(big.subarray(a, b + 1)).digest())))}-2"`;
  assert(h.ETag === wantEtag, `HEAD ETag ${h.ETag} != ${wantEtag}`);
  if (done.ETag !== wantEtag) quirk(`CompleteMultipartUpload (by hand) ETag ${JSON.stringify(done.ETag)}`);
});

// ------------------------------------------------------- conditional requests
await step('conditional GET: If-None-Match -> 304, If-Match mismatch -> 412', async () => {
  const etag = `"${md5(small)}"`;
  await expectError(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small.txt', IfNoneMatch: etag })), ['304', 'NotModified']);
  await expectError(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small.txt', IfMatch: '"0000"' })), ['412', 'PreconditionFailed']);
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'small.txt', IfMatch: etag }));
  assert((await body(r)).equals(small), 'content differs');
});

await step('probe: PutObject If-None-Match: * (create-only)', async () => {
  const first = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ifnone.txt', Body: small, IfNoneMatch: '*' }))
    .then(() => 'ok', (e) => errName(e));
  const second = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ifnone.txt', Body: small, IfNoneMatch: '*' }))
    .then(() => 'ok (overwrote!)', (e) => errName(e));
  const line = `PutObject If-None-Match:* -> new key: ${first}; existing key: ${second}`;
  if (first !== 'ok' || !second.includes('412')) quirk(line); else console.log(`      ${line}`);
});

await step('probe: PutObject If-Match (compare-and-swap)', async () => {
  const etag = md5(small);
  const put = (IfMatch) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'small.txt', Body: small, IfMatch }))
    .then(() => 'ok', (e) => errName(e));
  const quoted = await put(`"${etag}"`);
  const unquoted = await put(etag);
  const wrong = await put('"0000"');
  const line = `PutObject If-Match -> right ETag quoted: ${quoted}; right ETag unquoted: ${unquoted}; wrong ETag: ${wrong}`;
  if (quoted !== 'ok' || !wrong.includes('412')) quirk(line); else console.log(`      ${line}`);
});

await step('probe: CopyObject / UploadPartCopy x-amz-copy-source-if-* conditions', async () => {
  const etag = `"${md5(small)}"`;
  const copy = (extra) => s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'cond-copy.txt', CopySource: copySource('small.txt'), ...extra }))
    .then(() => 'ok', (e) => errName(e));
  const results = {
    'CopySourceIfMatch=wrong': await copy({ CopySourceIfMatch: '"0000"' }),
    'CopySourceIfNoneMatch=current': await copy({ CopySourceIfNoneMatch: etag }),
    'CopySourceIfUnmodifiedSince=1970': await copy({ CopySourceIfUnmodifiedSince: new Date(0) }),
  };
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'cond-part' }));
  results['UploadPartCopy CopySourceIfMatch=wrong'] = await s3.send(new UploadPartCopyCommand({
    Bucket: bucket, Key: 'cond-part', UploadId, PartNumber: 1, CopySource: copySource('small.txt'), CopySourceIfMatch: '"0000"',
  })).then(() => 'ok', (e) => errName(e));
  await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'cond-part', UploadId }));
  const line = Object.entries(results).map(([k, v]) => `${k}: ${v}`).join('; ');
  if (Object.values(results).some((v) => !v.includes('412'))) quirk(`copy preconditions not enforced (412 expected for each) -> ${line}`);
  else console.log(`      ${line}`);
});

await step('probe: CreateBucket on an existing own bucket', async () => {
  const r = await s3.send(new CreateBucketCommand({ Bucket: bucket })).then((x) => `ok (HTTP ${x.$metadata.httpStatusCode})`, (e) => errName(e));
  const line = `CreateBucket again on own bucket -> ${r}`;
  if (!r.startsWith('ok')) quirk(line); else console.log(`      ${line}`);
  await expectError(s3.send(new HeadBucketCommand({ Bucket: `${bucket}-missing` })), ['NotFound', '404']);
});

// --------------------------------------------- SDK default checksum behaviour
await step('probe: SDK default checksums (no WHEN_REQUIRED)', async () => {
  const buf = await s3Default.send(new PutObjectCommand({ Bucket: bucket, Key: 'dflt-buf', Body: small }))
    .then(() => 'ok', (e) => errName(e));
  const stream = await s3Default.send(new PutObjectCommand({
    Bucket: bucket, Key: 'dflt-stream', Body: Readable.from([small]), ContentLength: small.length,
  })).then(() => 'ok', (e) => errName(e));
  const mpu = await new Upload({ client: s3Default, params: { Bucket: bucket, Key: 'dflt-mpu', Body: big.subarray(0, 12 * MiB) }, partSize: 8 * MiB })
    .done().then(() => 'ok', (e) => errName(e));
  quirk(`with the SDK's default checksum settings: PutObject(Buffer) ${buf}; PutObject(stream) ${stream}; lib-storage multipart ${mpu}`);
});

// ---------------------------------------------------------------- benchmarks
async function timeIt(n, fn) {
  const t = [];
  for (let i = 0; i < n; i++) { const t0 = performance.now(); await fn(i); t.push(performance.now() - t0); }
  t.sort((a, b) => a - b);
  const pct = (p) => t[Math.min(t.length - 1, Math.floor(p * t.length))].toFixed(2);
  return `p50 ${pct(0.5)} ms, p95 ${pct(0.95)} ms, max ${t[t.length - 1].toFixed(2)} ms`;
}
if (bench) {
  await step('bench: small-object latency (200 each, 1 KiB, sequential, keep-alive)', async () => {
    const kb = randomBytes(1024);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'lat', Body: kb })); // warm-up
    console.log(`      PUT  ${await timeIt(200, (i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `lat/${i % 20}`, Body: kb })))}`);
    console.log(`      GET  ${await timeIt(200, async (i) => body(await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `lat/${i % 20}` }))))}`);
    console.log(`      HEAD ${await timeIt(200, (i) => s3.send(new HeadObjectCommand({ Bucket: bucket, Key: `lat/${i % 20}` })))}`);
  });
  await step('bench: 256 MiB multipart upload + download', async () => {
    const huge = randomBytes(256 * MiB);
    for (const queueSize of [1, 4]) {
      let t0 = performance.now();
      await new Upload({ client: s3, params: { Bucket: bucket, Key: 'huge.bin', Body: huge }, partSize: 8 * MiB, queueSize }).done();
      let s = (performance.now() - t0) / 1000;
      console.log(`      upload   256 MiB, 8 MiB parts, queueSize ${queueSize}: ${s.toFixed(2)} s = ${(256 / s).toFixed(0)} MiB/s`);
      t0 = performance.now();
      const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'huge.bin' }));
      const hash = createHash('md5'); let n = 0;
      for await (const chunk of r.Body) { hash.update(chunk); n += chunk.length; }
      s = (performance.now() - t0) / 1000;
      assert(n === huge.length && hash.digest('hex') === md5(huge), 'download differs');
      console.log(`      download 256 MiB, one GET stream:               ${s.toFixed(2)} s = ${(256 / s).toFixed(0)} MiB/s`);
      await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'huge.bin' }));
    }
  });
}

// ------------------------------------------------------------------ clean-up
await step('clean-up: delete everything, DeleteBucket', async () => {
  let token;
  do {
    const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    if (r.Contents?.length) {
      await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: r.Contents.map((c) => ({ Key: c.Key })) } }));
    }
    token = r.IsTruncated ? r.NextContinuationToken : undefined;
  } while (token);
  const u = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const x of u.Uploads ?? []) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: x.Key, UploadId: x.UploadId }));
  const { DeleteBucketCommand } = await import('@aws-sdk/client-s3');
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
});

console.log(`\n${failures.length ? 'FAILED: ' + failures.join('; ') : 'all checks passed'}; ${quirks.length} quirk(s) noted`);
process.exit(failures.length ? 1 : 0);
