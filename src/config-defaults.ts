// The few defaults and variable names the CLI's read commands need before (or without) the config
// schema: src/config.ts builds its TypeBox schema from these, and `kissmon usage` reads them
// without loading TypeBox (~250 ES modules, most of a client command's start-up).

export const DEFAULT_DB = './kissbot_monitor.db';
/** True when a --db value (config dbPath) names a PostgreSQL database; src/db/backend.ts parses it. */
export const isPostgresUrl = (value: string): boolean => /^postgres(ql)?:\/\//i.test(value);
/** `scheme://…` that is not postgres:// or postgresql:// (postgress://, pg://): a typo, never a file path. */
export const isOtherUrl = (value: string): boolean => /^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !isPostgresUrl(value);
/** What --host-name accepts: it names this monitor in every row it writes and in cross-host views. */
export const HOST_NAME_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';
export const DB_ENV = 'KISSBOT_MONITOR_DB';
/** Names the config file when --config is not given. */
export const CONFIG_FILE_ENV = 'KISSBOT_MONITOR_CONFIG';
/** Every config variable starts so (an env layer with another set means: resolve with the schema). */
export const CONFIG_ENV_PREFIX = 'KISSBOT_MONITOR_';

/** Defaults of config.llm that reports read. */
export const LLM_REPORT_DEFAULTS = { rollups: true, exactPercentileRows: 200_000 } as const;
