import type { RegisterCommand } from './types.js';
import { register as check } from './check.js';
import { register as apply } from './apply.js';
import { register as status } from './status.js';
import { register as manual } from './manual.js';
import { register as daemon } from './daemon.js';
import { register as doctor } from './doctor.js';
import { register as ops } from './ops.js';
import { register as reconcile } from './reconcile.js';
import { register as unbind } from './unbind.js';
import { register as importCmd } from './import.js';

export const commands: RegisterCommand[] = [check, apply, status, manual, daemon, doctor, ops, reconcile, unbind, importCmd];
