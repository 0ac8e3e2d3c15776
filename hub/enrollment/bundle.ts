// The enrollment wire schemas moved to protocol/bundle.ts so the agent can share them without
// importing from hub/; re-exported here so existing imports keep working.
export {
  BundleSchema, EnrollRequestSchema, PolicySchema, RenewRequestSchema, RenewResponseSchema, WgPublicKeySchema,
  type Bundle, type EnrollRequest, type Policy, type RenewRequest, type RenewResponse,
} from '../../protocol/bundle.js';
