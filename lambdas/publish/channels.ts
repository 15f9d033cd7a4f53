import type { PublishDeps } from './publish.js';

/** An error as the run record keeps it: `<name>: <message>`, at most 300 characters. */
export const errorLine = (e: unknown) => `${(e as Error).name}: ${(e as Error).message}`.slice(0, 300);

/**
 * Posts `text` (Slack mrkdwn whose data is already inert) in `channel` (`default`:
 * `deps.defaultChannel`): a run's summary (`output.slack`) or its failure (`notify:`).
 * @returns `slackError` for the run record when nothing was posted (never throws)
 */
export async function postToChannel(
  deps: Pick<PublishDeps, 'channels' | 'defaultChannel'>,
  channel: string,
  text: string,
): Promise<{ slackError?: string }> {
  const target = channel === 'default' ? deps.defaultChannel : channel;
  if (!target) {
    return {
      slackError:
        'output.slack: true posts in the default channel and none is configured (slackChannel in the environment config): name the channel in the workflow',
    };
  }
  if (!deps.channels) return { slackError: `no Slack client to post in ${target} (the function has no SLACK_SECRET_NAME)` };
  try {
    await deps.channels.post(target, text);
    return {};
  } catch (e) {
    return { slackError: errorLine(e) };
  }
}
