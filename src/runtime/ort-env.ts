/**
 * Process-wide settings onnxruntime-node reads from the environment when it creates its first
 * session. onnxruntime 1.30 builds for Linux/macOS include the 1DS telemetry client, which opens an
 * empty `mat-debug-<pid>.log` in $TMPDIR (else /tmp) in every process, and may upload usage events;
 * `ORT_DISABLE_TELEMETRY=1` stops both. A value the user set explicitly is kept.
 */

/** Call before the first `InferenceSession.create` of the process (later calls are no-ops). */
export function prepareOrtEnvironment(): void {
  process.env["ORT_DISABLE_TELEMETRY"] ??= "1";
}
