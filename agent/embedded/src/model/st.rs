//! Just enough of the safetensors format to map checkpoints tensor by tensor: read a file's
//! header, read one tensor's bytes, and write shards, so memory stays bounded by the largest
//! tensor rather than the model.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::ModelError;

/// One tensor's place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// `F32`, `BF16`, `F16`, ...
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Byte range inside the data section.
    pub start: u64,
    /// End of that range.
    pub end: u64,
    /// The shard file that holds it.
    pub file: PathBuf,
    /// Where the data section begins in the file.
    pub data_offset: u64,
}

impl TensorInfo {
    /// Bytes per element.
    pub fn elem_size(&self) -> Result<usize, ModelError> {
        dtype_size(&self.dtype).ok_or_else(|| ModelError::Format {
            path: self.file.clone(),
            message: format!("unsupported dtype {}", self.dtype),
        })
    }

    /// Reads this tensor's bytes.
    pub fn read(&self) -> Result<Vec<u8>, ModelError> {
        let mut file = File::open(&self.file).map_err(ModelError::io(&self.file))?;
        file.seek(SeekFrom::Start(self.data_offset + self.start))
            .map_err(ModelError::io(&self.file))?;
        let len = usize::try_from(self.end - self.start).map_err(|_| ModelError::Format {
            path: self.file.clone(),
            message: "tensor too large".into(),
        })?;
        let mut bytes = vec![0u8; len];
        file.read_exact(&mut bytes)
            .map_err(ModelError::io(&self.file))?;
        Ok(bytes)
    }
}

/// Bytes per element of a safetensors dtype.
pub fn dtype_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "I8" | "U8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

/// Reads the tensor table of one `.safetensors` file.
pub fn read_header(path: &Path) -> Result<BTreeMap<String, TensorInfo>, ModelError> {
    let bad = |message: String| ModelError::Format {
        path: path.to_path_buf(),
        message,
    };
    let mut file = File::open(path).map_err(ModelError::io(path))?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(ModelError::io(path))?;
    let len = u64::from_le_bytes(len);
    if len > 100 << 20 {
        return Err(bad(format!("header of {len} bytes is not plausible")));
    }
    let file_len = file.metadata().map_err(ModelError::io(path))?.len();
    let data_len = file_len
        .checked_sub(8 + len)
        .ok_or_else(|| bad(format!("header of {len} bytes runs past the file's end")))?;
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(ModelError::io(path))?;
    let header: Map<String, Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("bad header: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, entry) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or_default().to_owned();
        let shape: Vec<usize> = entry["shape"]
            .as_array()
            .ok_or_else(|| bad(format!("{name} has no shape")))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| bad(format!("{name}: its shape is not a list of sizes")))?;
        let offsets = &entry["data_offsets"];
        let (Some(start), Some(end)) = (offsets[0].as_u64(), offsets[1].as_u64()) else {
            return Err(bad(format!("{name} has no data_offsets")));
        };
        if end < start || end > data_len {
            return Err(bad(format!(
                "{name}: data_offsets [{start}, {end}] do not lie within the file's {data_len} \
                 bytes of data"
            )));
        }
        if let Some(size) = dtype_size(&dtype) {
            let expected = shape
                .iter()
                .try_fold(size as u64, |n, &d| n.checked_mul(d as u64));
            if expected != Some(end - start) {
                return Err(bad(format!(
                    "{name}: {dtype} {shape:?} does not take the {} bytes its data_offsets give",
                    end - start
                )));
            }
        }
        out.insert(
            name,
            TensorInfo {
                dtype,
                shape,
                start,
                end,
                file: path.to_path_buf(),
                data_offset: 8 + len,
            },
        );
    }
    Ok(out)
}

/// Every tensor of a model folder (one file, or shards listed by an index).
pub fn read_model(dir: &Path) -> Result<BTreeMap<String, TensorInfo>, ModelError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(ModelError::io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ModelError::Format {
            path: dir.to_path_buf(),
            message: "no .safetensors files".into(),
        });
    }
    let mut all = BTreeMap::new();
    for file in files {
        all.extend(read_header(&file)?);
    }
    Ok(all)
}

/// A tensor to write: name, dtype, shape and its bytes (produced when the shard is written).
pub struct Planned<'a> {
    /// Name in the output.
    pub name: String,
    /// Its safetensors dtype in the output (`F32`, `BF16`).
    pub dtype: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Size in bytes.
    pub bytes: u64,
    /// Produces the bytes.
    pub produce: Box<dyn Fn() -> Result<Vec<u8>, ModelError> + 'a>,
}

/// Writes `tensors` into shards of about `shard_bytes` in `dir`, plus
/// `model.safetensors.index.json`; calls `progress(bytes_written)` after each tensor.
pub fn write_shards(
    dir: &Path,
    tensors: Vec<Planned<'_>>,
    shard_bytes: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ModelError> {
    let mut shards: Vec<Vec<Planned<'_>>> = vec![Vec::new()];
    let mut size = 0;
    for tensor in tensors {
        if size > 0 && size + tensor.bytes > shard_bytes {
            shards.push(Vec::new());
            size = 0;
        }
        size += tensor.bytes;
        if let Some(last) = shards.last_mut() {
            last.push(tensor);
        }
    }
    let count = shards.len();
    let mut weight_map = Map::new();
    let mut total = 0u64;
    let mut written = 0u64;
    for (i, shard) in shards.into_iter().enumerate() {
        let name = format!("model-{:05}-of-{count:05}.safetensors", i + 1);
        let path = dir.join(&name);
        let mut header = Map::new();
        header.insert("__metadata__".into(), json!({"format": "pt"}));
        let mut offset = 0u64;
        for t in &shard {
            header.insert(
                t.name.clone(),
                json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.bytes]}),
            );
            offset += t.bytes;
            weight_map.insert(t.name.clone(), json!(name));
        }
        let mut header = serde_json::to_vec(&header).map_err(|e| ModelError::Format {
            path: path.clone(),
            message: e.to_string(),
        })?;
        while header.len() % 8 != 0 {
            header.push(b' ');
        }
        let file = File::create(&path).map_err(ModelError::io(&path))?;
        let mut out = BufWriter::with_capacity(8 << 20, file);
        out.write_all(&(header.len() as u64).to_le_bytes())
            .and_then(|()| out.write_all(&header))
            .map_err(ModelError::io(&path))?;
        for t in &shard {
            let bytes = (t.produce)()?;
            if bytes.len() as u64 != t.bytes {
                return Err(ModelError::Format {
                    path: path.clone(),
                    message: format!(
                        "{} produced {} bytes, planned {}",
                        t.name,
                        bytes.len(),
                        t.bytes
                    ),
                });
            }
            out.write_all(&bytes).map_err(ModelError::io(&path))?;
            written += t.bytes;
            progress(written);
        }
        out.flush().map_err(ModelError::io(&path))?;
        total += offset;
    }
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    let index_path = dir.join("model.safetensors.index.json");
    std::fs::write(
        &index_path,
        serde_json::to_vec_pretty(&index).unwrap_or_default(),
    )
    .map_err(ModelError::io(&index_path))
}
