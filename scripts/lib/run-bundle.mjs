// Runs one built job bundle the way Lambda does: import dist/functions/<job>/index.mjs in a fresh Node
// process (so its config is checked at cold start), call its `handler` with an event and a Lambda-like
// context, and write the report (or the error) as JSON to the output file.
//
//   node scripts/lib/run-bundle.mjs <bundle.mjs> <event.json> <out.json> [timeoutSeconds]
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [bundle, eventFile, outFile, timeoutSeconds = '300'] = process.argv.slice(2);
if (!bundle || !eventFile || !outFile) {
  console.error('usage: node scripts/lib/run-bundle.mjs <bundle.mjs> <event.json> <out.json> [timeoutSeconds]');
  process.exit(2);
}
const deadline = Date.now() + Number(timeoutSeconds) * 1000;
const context = {
  functionName: process.env.POWERTOOLS_SERVICE_NAME ?? 'local',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:local',
  memoryLimitInMB: '512',
  awsRequestId: randomUUID(),
  logGroupName: '/aws/lambda/local',
  logStreamName: 'local',
  callbackWaitsForEmptyEventLoop: false,
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};

try {
  const event = JSON.parse(readFileSync(eventFile, 'utf8'));
  const { handler } = await import(pathToFileURL(bundle).href);
  const report = await handler(event, context);
  writeFileSync(outFile, JSON.stringify({ ok: true, report }));
} catch (error) {
  writeFileSync(outFile, JSON.stringify({ ok: false, error: { name: error?.name, message: error?.message } }));
  process.exitCode = 1;
}
