/**
 * An SDK middleware that turns an answer no AWS API gives (an HTML or plain-text page from an emulator without
 * the API, a proxy, a captive portal) into an error naming the operation and the endpoint. Without it the SDK
 * says "NotFound: Unknown" (HTML 404) or, for an HTML 200, silently parses an empty result.
 */

import { Readable } from 'node:stream';

/** What the middleware needs of a client: its middleware stack (every SDK v3 client has one). */
interface HasMiddlewareStack {
  middlewareStack: { add(middleware: unknown, options: { step: 'deserialize'; priority: 'low'; name: string }): void };
}

interface RequestLike {
  protocol?: string;
  hostname?: string;
  port?: number;
  path?: string;
}

interface ResponseLike {
  statusCode?: number;
  headers?: Record<string, string | undefined>;
  body?: unknown;
}

/** The endpoint answered something no AWS API answers. `$metadata` keeps the status, so 5xx is retried as before. */
export class NotAnAwsApiError extends Error {
  override readonly name = 'NotAnAwsApiError';
  readonly $metadata: { httpStatusCode?: number };
  constructor(message: string, httpStatusCode: number | undefined) {
    super(message);
    this.$metadata = httpStatusCode === undefined ? {} : { httpStatusCode };
  }
}

/** `http://127.0.0.1:4566/path` from the SDK's HttpRequest (the path only when it says something). */
export function describeEndpoint(request: RequestLike | undefined): string {
  if (!request?.hostname) return 'an unknown endpoint';
  const port = request.port ? `:${request.port}` : '';
  const path = request.path && request.path !== '/' ? request.path : '';
  return `${request.protocol ?? 'https:'}//${request.hostname}${port}${path}`;
}

/** An HTML page (`<!DOCTYPE html` or `<html` first): no AWS API answers one. Bodies that are AWS XML are not pages. */
export function isHtmlPage(body: string): boolean {
  return /^\s*(<!doctype html|<html[\s>])/i.test(body);
}

/** The one-line error for `operation` (`DescribeInstanceRefreshes`) answered by an HTML page. */
export function notAnAwsApi(operation: string, request: RequestLike | undefined, statusCode: number | undefined): NotAnAwsApiError {
  return new NotAnAwsApiError(
    `${operation} failed at ${describeEndpoint(request)}: the endpoint answered HTML (${statusCode ?? 'no status'}) — not an AWS API`,
    statusCode,
  );
}

const operationName = (commandName: unknown): string => String(commandName ?? 'the AWS call').replace(/Command$/, '');

const header = (response: ResponseLike, name: string): string =>
  Object.entries(response.headers ?? {})
    .find(([k]) => k.toLowerCase() === name)?.[1]
    ?.toLowerCase() ?? '';

/** Only text/html answers are read ahead (moto labels its real XML answers text/html, so the body decides). */
function worthPeeking(response: ResponseLike, commandName: string | undefined): boolean {
  if (!header(response, 'content-type').startsWith('text/html')) return false;
  // An object that is an HTML page is a legitimate GetObject answer.
  const ok = (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300;
  return !(ok && commandName === 'GetObjectCommand');
}

async function readBody(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string' || body instanceof Uint8Array) return Buffer.from(body);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

type Next = (args: { request?: RequestLike }) => Promise<{ response: ResponseLike; output?: unknown }>;

/**
 * Install the mapper on `client` and return the client. It sits between the transport and the deserializer
 * (inside the retry loop): an HTML page becomes NotAnAwsApiError; anything else is passed on unchanged (the
 * body it read ahead is handed on as a fresh stream). Applied to every client shared/aws.ts makes.
 */
export function withSdkErrorMapping<T extends HasMiddlewareStack>(client: T): T {
  const middleware = (next: Next, context: { commandName?: string }) => async (args: { request?: RequestLike }) => {
    const result = await next(args);
    if (!worthPeeking(result.response, context.commandName)) return result;
    const body = await readBody(result.response.body);
    if (isHtmlPage(body.toString('utf8', 0, 512)))
      throw notAnAwsApi(operationName(context.commandName), args.request, result.response.statusCode);
    result.response.body = Readable.from([body]);
    return result;
  };
  client.middlewareStack.add(middleware, { step: 'deserialize', priority: 'low', name: 'notAnAwsApiErrorMiddleware' });
  return client;
}
