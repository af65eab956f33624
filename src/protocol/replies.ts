/** FTP reply codes used by the server, named after their meaning (RFC 959 §4.2, RFC 2228, RFC 4217, RFC 3659). */
export const Code = {
  RestartMarker: 110,
  ServiceReadySoon: 120,
  DataConnectionAlreadyOpen: 125,
  FileStatusOk: 150,
  Ok: 200,
  NotImplementedSuperfluous: 202,
  DataConnectionOpenNoTransfer: 225,
  SystemStatus: 211,
  DirectoryStatus: 212,
  FileStatus: 213,
  HelpMessage: 214,
  SystemType: 215,
  ServiceReady: 220,
  ClosingControl: 221,
  ClosingData: 226,
  EnteringPassive: 227,
  EnteringExtendedPassive: 229,
  LoggedIn: 230,
  SecurityExchangeOk: 234,
  FileActionOk: 250,
  PathCreated: 257,
  NeedPassword: 331,
  NeedAccount: 332,
  FileActionPending: 350,
  ServiceNotAvailable: 421,
  CannotOpenDataConnection: 425,
  TransferAborted: 426,
  FileActionNotTaken: 450,
  LocalError: 451,
  InsufficientStorage: 452,
  SyntaxError: 500,
  ArgumentSyntaxError: 501,
  NotImplemented: 502,
  BadSequence: 503,
  ParameterNotImplemented: 504,
  /** RFC 2428: network protocol not supported. */
  NetworkProtocolNotSupported: 522,
  /** RFC 4217: data connections must be protected. */
  ProtectionRequired: 521,
  NotLoggedIn: 530,
  /** RFC 2228: requested PROT level not supported. */
  ProtLevelNotSupported: 536,
  /** RFC 2228: policy requires SSL / command protected. */
  PolicyRequiresTls: 534,
  FileUnavailable: 550,
  PageTypeUnknown: 551,
  ExceededStorage: 552,
  FileNameNotAllowed: 553,
  /** RFC 1123 §4.1.3.4 / RFC 3659: requested action not taken, e.g. an invalid REST offset. */
  InvalidRestart: 554,
} as const;

export type ReplyCode = (typeof Code)[keyof typeof Code];

export type Reply = Readonly<{ code: ReplyCode; lines: readonly string[] }>;

/** A reply of one or more lines; text lines must not contain CR or LF (they are split if they do). */
export function reply(code: ReplyCode, ...lines: string[]): Reply {
  const flat = lines.flatMap((l) => l.split(/\r?\n|\r/));
  return Object.freeze({ code, lines: Object.freeze(flat.length > 0 ? flat : ['']) });
}

/**
 * A multi-line reply whose middle lines are produced while it is being sent, with backpressure: a listing over
 * the control connection (STAT path) of any size in bounded memory.
 */
export interface StreamedReply {
  readonly code: ReplyCode;
  readonly first: string;
  /** Middle lines; they must not contain CR or LF. */
  readonly lines: AsyncIterable<string>;
  readonly last: string;
  /** Frees what produces the lines; the sender calls it once, however sending ends. */
  release(): Promise<void>;
}

/** What a command handler answers with. */
export type AnyReply = Reply | StreamedReply;

export const isStreamed = (r: AnyReply): r is StreamedReply => 'release' in r;

/** A middle line of a multi-line reply: indented when it starts with digits, so no client takes it for the last line. */
export const formatMiddleLine = (line: string): string => (/^\d/.test(line) ? ` ${line}` : line);

/** Wire form per RFC 959 §4.2: "123-first", middle lines, "123 last". */
export function formatReply(r: Reply): string {
  const { code, lines } = r;
  if (lines.length === 1) return `${code} ${lines[0]}\r\n`;
  const last = lines.length - 1;
  return lines
    .map((line, i) => {
      if (i === 0) return `${code}-${line}`;
      if (i === last) return `${code} ${line}`;
      return formatMiddleLine(line);
    })
    .join('\r\n')
    .concat('\r\n');
}

export const isPositivePreliminary = (r: Reply): boolean => r.code >= 100 && r.code < 200;
