import { CodedError } from '../protocol/errors.js';

/** A program ncbnet runs (wg, wireguard-go, ip, nft) could not be started or exited non-zero. */
export const SYS_EXEC_FAILED = 'SYS_EXEC_FAILED';
/** A program ran past its deadline and was killed. */
export const SYS_EXEC_TIMEOUT = 'SYS_EXEC_TIMEOUT';
/** `wg set` refused a configuration. */
export const WG_APPLY_FAILED = 'WG_APPLY_FAILED';
/** A WireGuard key is not 44 characters of base64 encoding 32 bytes. */
export const WG_BAD_KEY = 'WG_BAD_KEY';
/** A peer specification (allowed IPs, endpoint, keepalive, duplicates) is invalid. */
export const WG_BAD_PEER = 'WG_BAD_PEER';
/** Tunnel options (address, port) are invalid. */
export const WG_BAD_CONFIG = 'WG_BAD_CONFIG';
/** A tunnel method was called in the wrong state (before start(), or start() twice). */
export const WG_TUNNEL_STATE = 'WG_TUNNEL_STATE';
/** `wg show IFNAME dump` printed something this wrapper does not understand. */
export const WG_PARSE_FAILED = 'WG_PARSE_FAILED';
/** wireguard-go did not come up (exited, or no socket and link before the deadline). */
export const WG_USERSPACE_FAILED = 'WG_USERSPACE_FAILED';
/** An interface name does not fit Linux's rules (1–15 characters, no `/`, no whitespace). */
export const SYS_BAD_IFNAME = 'SYS_BAD_IFNAME';
/** A network namespace name is not a plain file name (it becomes a path under /run/netns). */
export const SYS_BAD_NETNS = 'SYS_BAD_NETNS';
/** `ip` failed. */
export const IP_FAILED = 'IP_FAILED';
/** `nft` refused a ruleset or a command. */
export const NFT_APPLY_FAILED = 'NFT_APPLY_FAILED';
/** A ruleset handed to the nft wrapper declares something other than `table inet ncbnet`. */
export const NFT_FOREIGN_TABLE = 'NFT_FOREIGN_TABLE';
/** `nft -j` printed JSON of an unexpected shape. */
export const NFT_PARSE_FAILED = 'NFT_PARSE_FAILED';
/** Hub firewall inputs (interface, ports, CIDR, address) are invalid. */
export const FW_BAD_INPUT = 'FW_BAD_INPUT';

/**
 * Base of every failure of the operating-system wrappers. `code` is one of the constants above.
 * Messages never contain private keys: stdin is not recorded, and stdout is left out because
 * `wg show dump` prints the private key.
 */
export class SystemError extends CodedError {}

/**
 * A child program failed. Carries the command line (argv only: secrets go on stdin, never argv),
 * the exit code or signal, and the program's stderr (bounded).
 */
export class ExecError extends SystemError {
  /** `argv` joined by spaces, e.g. `ip netns exec ns1 wg set wg0 listen-port 51820`. */
  readonly command: string;
  /** Exit status, or null when the program was killed by a signal or never started. */
  readonly exitCode: number | null;
  /** Signal that ended the program, if any. */
  readonly signal: NodeJS.Signals | null;
  /** The program's standard error, trimmed and bounded. */
  readonly stderr: string;

  constructor(
    code: string,
    message: string,
    details: { command: string; exitCode: number | null; signal: NodeJS.Signals | null; stderr: string; cause?: unknown },
  ) {
    super(code, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.command = details.command;
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.stderr = details.stderr;
  }
}
