// One warm "container" of a bundled Lambda function, as the Node.js runtime of Lambda runs it:
// the module is imported once (init), then invocations arrive one at a time over the IPC channel
// ({ id, event, deadlineMs, requestId }) and their outcome goes back as
// { id, ok: true, payload: <JSON text> } or { id, ok: false, errorType, errorMessage, trace }.
// stdout and stderr stay the function's logs. Plain JavaScript: it runs on `process.execPath`
// without a loader, exactly the bundled file and nothing of the test's module graph.
import { pathToFileURL } from 'node:url';

const [moduleFile, exportName] = process.argv.slice(2);
const init = import(pathToFileURL(moduleFile).href);
init.catch(() => undefined);

const describe = (e) => ({
  errorType: (e && typeof e === 'object' && typeof e.name === 'string' && e.name) || 'Error',
  errorMessage: e instanceof Error ? e.message : String(e),
  trace: e instanceof Error && typeof e.stack === 'string' ? e.stack.split('\n') : [],
});

process.on('message', async (msg) => {
  const { id, event, deadlineMs, requestId } = msg;
  let mod;
  try {
    mod = await init;
  } catch (e) {
    process.send({ id, ok: false, ...describe(e), errorType: 'Runtime.ImportModuleError' });
    return;
  }
  const handler = mod[exportName];
  if (typeof handler !== 'function') {
    process.send({
      id,
      ok: false,
      errorType: 'Runtime.HandlerNotFound',
      errorMessage: `${moduleFile}.${exportName} is undefined or not exported`,
      trace: [],
    });
    return;
  }
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: process.env.AGENTFLOW_HARNESS_FUNCTION_ARN,
    memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${process.env.AWS_LAMBDA_FUNCTION_NAME}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
  try {
    const result = await handler(event, context);
    process.send({ id, ok: true, payload: JSON.stringify(result) ?? 'null' });
  } catch (e) {
    process.send({ id, ok: false, ...describe(e) });
  }
});
// Ready once the module's init ran (or failed): as in Lambda, init does not count against the
// invocation's timeout, and a failed init fails each invocation.
init.then(
  () => process.send({ ready: true }),
  () => process.send({ ready: true }),
);
