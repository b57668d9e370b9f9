/**
 * Writes a GraphBuilder as an ONNX ModelProto. Weights go to one external data file beside the
 * model (`<model>.onnx.data`), each at a 4096-aligned offset, so the protobuf stays small (the 2 GB
 * protobuf limit never applies to weights). Weights are streamed: each source is loaded, written and
 * dropped before the next. Both files are written to temporary names and renamed at the end.
 */
import { open, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { endianness } from "node:os";
import { GraphError, UnsupportedError, throwIfAborted } from "../errors.js";
import type { LongTaskOptions } from "../progress.js";
import { type HostTensor, numel, shapeToString, shapesEqual } from "../tensor.js";
import type { Attribute, GraphBuilder, InitializerRecord, Value } from "./builder.js";
import { toOnnxDataType } from "./dtype.js";
import { ATTRIBUTE_TYPE, DATA_LOCATION, IR_VERSION, onnxType } from "./proto.js";
import { withAtomicFiles } from "../util/atomic-write.js";
import { castTensor, tensorSource } from "./weight-source.js";

export const EXTERNAL_DATA_ALIGNMENT = 4096;
/** Constants larger than this many bytes are written to the external data file too. */
const INLINE_CONSTANT_LIMIT = 4096;

export interface WriteModelOptions extends LongTaskOptions {
  /** External data file name, relative to the model's folder (default: `<model file name>.data`). */
  readonly dataFileName?: string;
  /** Stored in ModelProto.producer_name (default "steadyframe"). */
  readonly producerName?: string;
  /** Stored as ModelProto.metadata_props. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** fsync both files before renaming them into place (default true; costs a flush to disk). */
  readonly durable?: boolean;
}

export interface WriteModelResult {
  readonly modelPath: string;
  /** Null when the graph has no external tensors (no data file is written). */
  readonly dataPath: string | null;
  readonly modelBytes: number;
  readonly dataBytes: number;
  readonly externalTensors: number;
}

type ProtoObject = Record<string, unknown>;

/** Raw little-endian bytes of a tensor's data (a view, no copy). */
export function tensorBytes(t: HostTensor): Uint8Array {
  if (endianness() !== "LE") throw new UnsupportedError("writing ONNX tensors on a big-endian machine");
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Writes `graph` to `modelPath` (+ external data file). See the file comment for guarantees. */
export async function writeModel(
  graph: GraphBuilder,
  modelPath: string,
  options: WriteModelOptions = {},
): Promise<WriteModelResult> {
  const dataFileName = options.dataFileName ?? `${basename(modelPath)}.data`;
  const dataPath = join(dirname(modelPath), dataFileName);
  const external: InitializerRecord[] = [...graph.initializers];
  const inline: HostTensor[] = [];
  const inlineNames: string[] = [];
  for (const c of graph.constants) {
    if (c.tensor.data.byteLength > INLINE_CONSTANT_LIMIT) {
      external.push({
        name: c.name,
        dtype: c.tensor.dtype,
        shape: c.tensor.shape,
        source: tensorSource(c.tensor),
      });
    } else {
      inline.push(c.tensor);
      inlineNames.push(c.name);
    }
  }
  const tensors: ProtoObject[] = inline.map((t, i) => inlineTensorProto(inlineNames[i] ?? "", t));
  let dataBytes = 0;
  // The data file is renamed into place before the model that points at it.
  const write = async ([tmpData, tmpModel]: string[]): Promise<number> => {
    if (external.length > 0) {
      const fh = await open(tmpData ?? "", "wx");
      try {
        options.onProgress?.({ status: "start", task: "write weights", total: external.length });
        for (const [i, init] of external.entries()) {
          throwIfAborted(options.signal, `writing ${modelPath}`);
          const t = await loadChecked(init);
          const bytes = tensorBytes(t);
          const offset = alignUp(dataBytes, EXTERNAL_DATA_ALIGNMENT);
          let written = 0;
          while (written < bytes.byteLength) {
            const { bytesWritten } = await fh.write(
              bytes,
              written,
              bytes.byteLength - written,
              offset + written,
            );
            written += bytesWritten;
          }
          dataBytes = offset + bytes.byteLength;
          tensors.push(externalTensorProto(init, dataFileName, offset, bytes.byteLength));
          options.onProgress?.({
            status: "progress",
            task: "write weights",
            done: i + 1,
            total: external.length,
          });
        }
      } finally {
        await fh.close();
      }
      options.onProgress?.({ status: "done", task: "write weights" });
    }
    const bytes = encodeModelProto(graph, tensors, options);
    await writeFile(tmpModel ?? "", bytes, { flag: "wx" });
    return bytes.byteLength;
  };
  const modelBytes = await withAtomicFiles([dataPath, modelPath], write, {
    durable: options.durable ?? true,
    createParents: false,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  return {
    modelPath,
    dataPath: external.length > 0 ? dataPath : null,
    modelBytes,
    dataBytes,
    externalTensors: external.length,
  };
}

/** Encodes the model with every tensor inline (for small graphs and in-memory sessions; < 2 GB). */
export async function encodeModelInline(
  graph: GraphBuilder,
  options: Omit<WriteModelOptions, "dataFileName"> = {},
): Promise<Uint8Array> {
  const tensors: ProtoObject[] = graph.constants.map((c) => inlineTensorProto(c.name, c.tensor));
  for (const init of graph.initializers) {
    throwIfAborted(options.signal, "encoding the model");
    tensors.push(inlineTensorProto(init.name, await loadChecked(init)));
  }
  return encodeModelProto(graph, tensors, options);
}

async function loadChecked(init: InitializerRecord): Promise<HostTensor> {
  const raw = await init.source.load();
  if (
    raw.dtype !== init.source.dtype ||
    !shapesEqual(raw.shape, init.shape) ||
    raw.data.length !== numel(init.shape)
  ) {
    throw new GraphError(
      "serialize",
      `weight ${init.name}: its source promised ${init.source.dtype}${shapeToString(init.shape)} but gave ` +
        `${raw.dtype}${shapeToString(raw.shape)} with ${raw.data.length} elements`,
      { hint: "the weight file changed since the graph was built, or the weight store is wrong" },
    );
  }
  return castTensor(raw, init.dtype);
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function inlineTensorProto(name: string, t: HostTensor): ProtoObject {
  return { name, dims: [...t.shape], data_type: toOnnxDataType(t.dtype), raw_data: tensorBytes(t) };
}

function externalTensorProto(
  init: InitializerRecord,
  location: string,
  offset: number,
  length: number,
): ProtoObject {
  return {
    name: init.name,
    dims: [...init.shape],
    data_type: toOnnxDataType(init.dtype),
    data_location: DATA_LOCATION.external,
    external_data: [
      { key: "location", value: location },
      { key: "offset", value: String(offset) },
      { key: "length", value: String(length) },
    ],
  };
}

function valueInfo(v: Value): ProtoObject {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: toOnnxDataType(v.dtype),
        shape: {
          dim: v.shape.map((d) =>
            typeof d === "number" ? { dim_value: d } : d === null ? {} : { dim_param: d },
          ),
        },
      },
    },
  };
}

function attributeProto(name: string, a: Attribute): ProtoObject {
  const type = ATTRIBUTE_TYPE[a.type];
  switch (a.type) {
    case "int":
      return { name, type, i: a.value };
    case "float":
      return { name, type, f: a.value };
    case "string":
      return { name, type, s: new TextEncoder().encode(a.value) };
    case "ints":
      return { name, type, ints: [...a.value] };
    case "floats":
      return { name, type, floats: [...a.value] };
    case "strings":
      return { name, type, strings: a.value.map((s) => new TextEncoder().encode(s)) };
    case "tensor":
      return { name, type, t: inlineTensorProto("", a.value) };
  }
}

function encodeModelProto(
  graph: GraphBuilder,
  tensors: ProtoObject[],
  options: Omit<WriteModelOptions, "dataFileName">,
): Uint8Array {
  if (graph.outputs.length === 0) {
    throw new GraphError("serialize", `graph "${graph.name}" has no outputs`, {
      hint: "call g.output(value) before writing",
    });
  }
  const model: ProtoObject = {
    ir_version: IR_VERSION,
    producer_name: options.producerName ?? "steadyframe",
    opset_import: [...graph.opsetImports].map(([domain, version]) => ({ domain, version })),
    metadata_props: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    graph: {
      name: graph.name,
      node: graph.nodes.map((n) => ({
        name: n.name,
        op_type: n.opType,
        domain: n.domain,
        input: [...n.inputs],
        output: [...n.outputs],
        attribute: Object.entries(n.attributes).map(([k, a]) => attributeProto(k, a)),
      })),
      initializer: tensors,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
    },
  };
  const type = onnxType("ModelProto");
  return type.encode(type.fromObject(model)).finish();
}
