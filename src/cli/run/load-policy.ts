// Loads one policy file for an ops command, or throws a UserError carrying every
// diagnostic (file:line:col, source line, caret): ops commands never act on a bad policy.
import { loadPolicyFile, PolicyReadError } from '../../dsl/load.js';
import { formatDiagnostic, hasErrors } from '../../dsl/index.js';
import type { PolicyFile } from '../../dsl/ast.js';
import { UserError, EXIT } from '../io.js';

export async function loadCheckedPolicy(file: string): Promise<PolicyFile> {
  let loaded;
  try {
    loaded = await loadPolicyFile(file);
  } catch (e) {
    if (e instanceof PolicyReadError) throw new UserError(e.message, EXIT.usage);
    throw e;
  }
  if (!loaded.policy || hasErrors(loaded.diagnostics)) {
    const errs = loaded.diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(d, loaded.text));
    throw new UserError(`invalid policy ${file}:\n${errs.join('\n')}`, EXIT.failed);
  }
  return loaded.policy;
}
