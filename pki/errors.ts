import { CodedError } from '../protocol/errors.js';

/** Base of every PKI failure; `code` is one of the constants below. */
export class PkiError extends CodedError {}

export const PKI_PEM_MALFORMED = 'PKI_PEM_MALFORMED';
export const PKI_CSR_MALFORMED = 'PKI_CSR_MALFORMED';
export const PKI_CSR_BAD_SIGNATURE = 'PKI_CSR_BAD_SIGNATURE';
export const PKI_CSR_WEAK_KEY = 'PKI_CSR_WEAK_KEY';
export const PKI_CSR_WEAK_ALGORITHM = 'PKI_CSR_WEAK_ALGORITHM';
export const PKI_CSR_KEY_TYPE = 'PKI_CSR_KEY_TYPE';
export const PKI_CSR_BAD_SUBJECT = 'PKI_CSR_BAD_SUBJECT';
export const PKI_CSR_COUNTRY_MISMATCH = 'PKI_CSR_COUNTRY_MISMATCH';
export const PKI_BAD_COUNTRY = 'PKI_BAD_COUNTRY';
export const PKI_BAD_NAME = 'PKI_BAD_NAME';
export const PKI_BAD_LIFETIME = 'PKI_BAD_LIFETIME';
export const PKI_CA_EXISTS = 'PKI_CA_EXISTS';
export const PKI_CA_MISSING = 'PKI_CA_MISSING';
export const PKI_CA_INVALID = 'PKI_CA_INVALID';
export const PKI_KEY_PERMISSIONS = 'PKI_KEY_PERMISSIONS';
export const PKI_KEY_MALFORMED = 'PKI_KEY_MALFORMED';
export const PKI_SERIAL_MALFORMED = 'PKI_SERIAL_MALFORMED';
export const PKI_SERIAL_UNKNOWN = 'PKI_SERIAL_UNKNOWN';
export const PKI_ALREADY_REVOKED = 'PKI_ALREADY_REVOKED';
export const PKI_BAD_REASON = 'PKI_BAD_REASON';
export const PKI_LEDGER_CORRUPT = 'PKI_LEDGER_CORRUPT';

export const ENROLL_TOKEN_MALFORMED = 'ENROLL_TOKEN_MALFORMED';
export const ENROLL_TOKEN_UNKNOWN = 'ENROLL_TOKEN_UNKNOWN';
export const ENROLL_TOKEN_EXPIRED = 'ENROLL_TOKEN_EXPIRED';
export const ENROLL_TOKEN_USED = 'ENROLL_TOKEN_USED';
export const ENROLL_TOKEN_WRONG_CA = 'ENROLL_TOKEN_WRONG_CA';
export const ENROLL_TOKEN_BAD_TTL = 'ENROLL_TOKEN_BAD_TTL';

/** A PEM block was missing, of the wrong type, or not valid base64/DER. */
export class PemError extends PkiError {}
/** A CSR was refused; `code` says why (malformed, signature, key, subject, country). */
export class CsrError extends PkiError {}
/** The CA on disk is missing, already there, or inconsistent. */
export class CaStateError extends PkiError {}
/** A private key file is malformed or readable by others. */
export class KeyFileError extends PkiError {}
/** A serial number is malformed, unknown, or already revoked; or a reason is unknown. */
export class RevocationError extends PkiError {}
/** An append-only journal (ledger, token store) has a damaged record. */
export class JournalError extends PkiError {}
/** Bad issuance parameters from the caller (country, name, lifetime). */
export class IssueError extends PkiError {}
/** An enrollment token was refused; `code` says why. */
export class TokenError extends PkiError {}

export const PKI_CMS_NO_RECIPIENTS = 'PKI_CMS_NO_RECIPIENTS';
export const PKI_CMS_TOO_MANY_RECIPIENTS = 'PKI_CMS_TOO_MANY_RECIPIENTS';
export const PKI_CMS_BAD_RECIPIENT = 'PKI_CMS_BAD_RECIPIENT';
export const PKI_CMS_TOO_LARGE = 'PKI_CMS_TOO_LARGE';
export const PKI_CMS_ENCRYPT_FAILED = 'PKI_CMS_ENCRYPT_FAILED';
export const PKI_CMS_MALFORMED = 'PKI_CMS_MALFORMED';
export const PKI_CMS_UNSUPPORTED = 'PKI_CMS_UNSUPPORTED';
export const PKI_CMS_NOT_RECIPIENT = 'PKI_CMS_NOT_RECIPIENT';
export const PKI_CMS_BAD_KEY = 'PKI_CMS_BAD_KEY';
export const PKI_CMS_KEY_MISMATCH = 'PKI_CMS_KEY_MISMATCH';
export const PKI_CMS_DECRYPT_FAILED = 'PKI_CMS_DECRYPT_FAILED';

/** A CMS EnvelopedData could not be made or read (recipients, size, structure, key, decryption); `code` says why. */
export class CmsError extends PkiError {}
