/**
 * Builds tiny ONNX models in memory for tests, with protobufjs reflection over the few ModelProto
 * fields needed (field numbers from the ONNX IR spec, onnx/onnx.proto). The models are 1x1
 * convolutions: each output map is a fixed linear function of the three input channels, so tests
 * can compute the expected result by hand.
 */
import protobuf from "protobufjs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const FLOAT = 1;

const root = protobuf.Root.fromJSON({
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            ir_version: { id: 1, type: "int64" },
            producer_name: { id: 2, type: "string" },
            graph: { id: 7, type: "GraphProto" },
            opset_import: { id: 8, rule: "repeated", type: "OperatorSetIdProto" },
          },
        },
        OperatorSetIdProto: {
          fields: { domain: { id: 1, type: "string" }, version: { id: 2, type: "int64" } },
        },
        GraphProto: {
          fields: {
            node: { id: 1, rule: "repeated", type: "NodeProto" },
            name: { id: 2, type: "string" },
            initializer: { id: 5, rule: "repeated", type: "TensorProto" },
            input: { id: 11, rule: "repeated", type: "ValueInfoProto" },
            output: { id: 12, rule: "repeated", type: "ValueInfoProto" },
          },
        },
        NodeProto: {
          fields: {
            input: { id: 1, rule: "repeated", type: "string" },
            output: { id: 2, rule: "repeated", type: "string" },
            name: { id: 3, type: "string" },
            op_type: { id: 4, type: "string" },
          },
        },
        TensorProto: {
          fields: {
            dims: { id: 1, rule: "repeated", type: "int64" },
            data_type: { id: 2, type: "int32" },
            float_data: { id: 4, rule: "repeated", type: "float", options: { packed: true } },
            name: { id: 8, type: "string" },
          },
        },
        ValueInfoProto: { fields: { name: { id: 1, type: "string" }, type: { id: 2, type: "TypeProto" } } },
        TypeProto: {
          fields: { tensor_type: { id: 1, type: "TensorTypeProto" } },
        },
        TensorTypeProto: {
          fields: { elem_type: { id: 1, type: "int32" }, shape: { id: 2, type: "TensorShapeProto" } },
        },
        TensorShapeProto: { fields: { dim: { id: 1, rule: "repeated", type: "Dimension" } } },
        Dimension: { fields: { dim_value: { id: 1, type: "int64" }, dim_param: { id: 2, type: "string" } } },
      },
    },
  },
});

const ModelProto = root.lookupType("onnx.ModelProto");

/** One output map `out = w[0]·R + w[1]·G + w[2]·B + bias` of the normalised input channels. */
export interface LinearMap {
  readonly name: string;
  readonly weights: readonly [number, number, number];
  readonly bias: number;
}

export interface TinyConvModel {
  /** (default "pixel_values") graph input name. */
  readonly inputName?: string;
  readonly outputs: readonly LinearMap[];
  /** Fixed [height, width] of the input; default symbolic ("height", "width"). */
  readonly fixedSize?: readonly [number, number];
}

function dims(values: readonly (number | string)[]): { dim: Record<string, number | string>[] } {
  return { dim: values.map((v) => (typeof v === "number" ? { dim_value: v } : { dim_param: v })) };
}

/** Serialises a ModelProto: one 1x1 Conv per output, NCHW float32, opset 13. */
export function tinyConvModelBytes(spec: TinyConvModel): Uint8Array {
  const input = spec.inputName ?? "pixel_values";
  const [h, w] = spec.fixedSize ?? ["height", "width"];
  const nodes = spec.outputs.map((o, i) => ({
    input: [input, `w${i}`, `b${i}`],
    output: [o.name],
    name: `conv${i}`,
    op_type: "Conv",
  }));
  const initializer = spec.outputs.flatMap((o, i) => [
    { name: `w${i}`, data_type: FLOAT, dims: [1, 3, 1, 1], float_data: [...o.weights] },
    { name: `b${i}`, data_type: FLOAT, dims: [1], float_data: [o.bias] },
  ]);
  const tensorType = (shape: readonly (number | string)[]): Record<string, unknown> => ({
    tensor_type: { elem_type: FLOAT, shape: dims(shape) },
  });
  const message = ModelProto.fromObject({
    ir_version: 8,
    producer_name: "steadyframe-tests",
    opset_import: [{ domain: "", version: 13 }],
    graph: {
      name: "tiny",
      node: nodes,
      initializer,
      input: [{ name: input, type: tensorType([1, 3, h, w]) }],
      output: spec.outputs.map((o) => ({ name: o.name, type: tensorType([1, 1, h, w]) })),
    },
  });
  return ModelProto.encode(message).finish();
}

/** Writes the model to a fresh temporary folder and returns its path. */
export async function writeTinyConvModel(spec: TinyConvModel): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "steadyframe-onnx-"));
  const path = join(dir, "model.onnx");
  await writeFile(path, tinyConvModelBytes(spec));
  return path;
}
