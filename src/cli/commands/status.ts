import type { RegisterCommand } from './types.js';

// Placeholder until the issue that owns this command lands.
export const register: RegisterCommand = () => {};
