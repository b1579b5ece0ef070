// kissbot-monitor/client: the bot side, for code that already depends on the daemon package. A bot
// that needs only the client installs kissbot-monitor-client (no native build, no dependencies).
export * from 'kissbot-monitor-client';
