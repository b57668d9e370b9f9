/**
 * The subset of the ONNX protobuf schema we write, described with protobufjs reflection. Field
 * numbers and types are those of onnx/onnx: onnx/onnx.proto (proto2). Enum fields are written as
 * int32 (wire-compatible); oneofs are plain optional fields of which we set one.
 */
import protobuf from "protobufjs";

type Rule = "repeated" | "packed";
type FieldSpec = readonly [name: string, id: number, type: string, rule?: Rule];

function message(
  name: string,
  fields: readonly FieldSpec[],
  nested: readonly protobuf.Type[] = [],
): protobuf.Type {
  const type = new protobuf.Type(name);
  for (const [fieldName, id, fieldType, rule] of fields) {
    const options = rule === "packed" ? { packed: true } : undefined;
    type.add(
      new protobuf.Field(
        fieldName,
        id,
        fieldType,
        rule === undefined ? "optional" : "repeated",
        undefined,
        options,
      ),
    );
  }
  for (const n of nested) type.add(n);
  return type;
}

function build(): protobuf.Root {
  const root = new protobuf.Root();
  const onnx = new protobuf.Namespace("onnx");
  root.add(onnx);
  onnx.add(
    message("StringStringEntryProto", [
      ["key", 1, "string"],
      ["value", 2, "string"],
    ]),
  );
  onnx.add(
    message("OperatorSetIdProto", [
      ["domain", 1, "string"],
      ["version", 2, "int64"],
    ]),
  );
  onnx.add(
    message("TensorProto", [
      ["dims", 1, "int64", "packed"],
      ["data_type", 2, "int32"],
      ["float_data", 4, "float", "packed"],
      ["int32_data", 5, "int32", "packed"],
      ["int64_data", 7, "int64", "packed"],
      ["name", 8, "string"],
      ["raw_data", 9, "bytes"],
      ["doc_string", 12, "string"],
      ["external_data", 13, "StringStringEntryProto", "repeated"],
      ["data_location", 14, "int32"],
    ]),
  );
  onnx.add(
    message(
      "TensorShapeProto",
      [["dim", 1, "Dimension", "repeated"]],
      [
        message("Dimension", [
          ["dim_value", 1, "int64"],
          ["dim_param", 2, "string"],
        ]),
      ],
    ),
  );
  onnx.add(
    message(
      "TypeProto",
      [
        ["tensor_type", 1, "Tensor"],
        ["denotation", 6, "string"],
      ],
      [
        message("Tensor", [
          ["elem_type", 1, "int32"],
          ["shape", 2, "TensorShapeProto"],
        ]),
      ],
    ),
  );
  onnx.add(
    message("ValueInfoProto", [
      ["name", 1, "string"],
      ["type", 2, "TypeProto"],
      ["doc_string", 3, "string"],
    ]),
  );
  onnx.add(
    message("AttributeProto", [
      ["name", 1, "string"],
      ["f", 2, "float"],
      ["i", 3, "int64"],
      ["s", 4, "bytes"],
      ["t", 5, "TensorProto"],
      ["floats", 7, "float", "packed"],
      ["ints", 8, "int64", "packed"],
      ["strings", 9, "bytes", "repeated"],
      ["doc_string", 13, "string"],
      ["type", 20, "int32"],
    ]),
  );
  onnx.add(
    message("NodeProto", [
      ["input", 1, "string", "repeated"],
      ["output", 2, "string", "repeated"],
      ["name", 3, "string"],
      ["op_type", 4, "string"],
      ["attribute", 5, "AttributeProto", "repeated"],
      ["doc_string", 6, "string"],
      ["domain", 7, "string"],
    ]),
  );
  onnx.add(
    message("GraphProto", [
      ["node", 1, "NodeProto", "repeated"],
      ["name", 2, "string"],
      ["initializer", 5, "TensorProto", "repeated"],
      ["doc_string", 10, "string"],
      ["input", 11, "ValueInfoProto", "repeated"],
      ["output", 12, "ValueInfoProto", "repeated"],
      ["value_info", 13, "ValueInfoProto", "repeated"],
    ]),
  );
  onnx.add(
    message("ModelProto", [
      ["ir_version", 1, "int64"],
      ["producer_name", 2, "string"],
      ["producer_version", 3, "string"],
      ["domain", 4, "string"],
      ["model_version", 5, "int64"],
      ["doc_string", 6, "string"],
      ["graph", 7, "GraphProto"],
      ["opset_import", 8, "OperatorSetIdProto", "repeated"],
      ["metadata_props", 14, "StringStringEntryProto", "repeated"],
    ]),
  );
  root.resolveAll();
  return root;
}

let cached: protobuf.Root | undefined;

/** Looks up one ONNX message type ("ModelProto", "TensorProto", ...). Built lazily on first use. */
export function onnxType(name: string): protobuf.Type {
  cached ??= build();
  return cached.lookupType(`onnx.${name}`);
}

/** AttributeProto.AttributeType values. */
export const ATTRIBUTE_TYPE = {
  float: 1,
  int: 2,
  string: 3,
  tensor: 4,
  floats: 6,
  ints: 7,
  strings: 8,
} as const;

/** TensorProto.DataLocation values. */
export const DATA_LOCATION = { default: 0, external: 1 } as const;

/** ONNX IR version written (IR 10 comes with opset 21). */
export const IR_VERSION = 10;
