//! Strings, frames and stacks shared by the whole trace.
//!
//! Each generation of a trace carries its own string and stack tables with IDs local to
//! it; the catalog interns their contents so one ID means one string (or stack) across
//! the whole trace. ID 0 is always "" / "no stack".

use crate::fasthash::IdMap;
use std::collections::HashMap;

/// One frame of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame {
    pub pc: u64,
    /// Function name (catalog string ID).
    pub func: u32,
    /// Source file (catalog string ID).
    pub file: u32,
    pub line: u64,
}

/// The trace-wide tables.
#[derive(Debug)]
pub struct Catalog {
    strings: Vec<String>,
    string_ids: HashMap<String, u32>,
    frames: Vec<Frame>,
    frame_ids: IdMap<Frame, u32>,
    /// Stack i's frames are stack_frames[stack_start[i]..stack_start[i+1]] (frame IDs).
    stack_start: Vec<u32>,
    stack_frames: Vec<u32>,
    stack_ids: HashMap<Vec<u32>, u32>,
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    pub fn new() -> Self {
        let mut c = Catalog {
            strings: Vec::new(),
            string_ids: HashMap::new(),
            frames: Vec::new(),
            frame_ids: IdMap::default(),
            stack_start: vec![0, 0],
            stack_frames: Vec::new(),
            stack_ids: HashMap::new(),
        };
        c.string("");
        c
    }

    /// The ID of `s`, adding it if new.
    pub fn string(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    /// The ID of the stack made of `frames` (outermost last), adding it if new.
    /// An empty but present stack gets its own ID, distinct from 0 (no stack).
    pub fn stack(&mut self, frames: &[Frame]) -> u32 {
        let ids: Vec<u32> = frames.iter().map(|f| self.frame(*f)).collect();
        if let Some(&id) = self.stack_ids.get(&ids) {
            return id;
        }
        let id = (self.stack_start.len() - 1) as u32;
        self.stack_frames.extend_from_slice(&ids);
        self.stack_start.push(self.stack_frames.len() as u32);
        self.stack_ids.insert(ids, id);
        id
    }

    fn frame(&mut self, f: Frame) -> u32 {
        if let Some(&id) = self.frame_ids.get(&f) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.frames.push(f);
        self.frame_ids.insert(f, id);
        id
    }

    pub fn strings(&self) -> &[String] {
        &self.strings
    }

    pub fn get_string(&self, id: u32) -> &str {
        self.strings
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// Frame IDs of stack `id`, innermost first (empty for 0).
    pub fn stack_frames(&self, id: u32) -> &[u32] {
        let i = id as usize;
        if i + 1 >= self.stack_start.len() {
            return &[];
        }
        &self.stack_frames[self.stack_start[i] as usize..self.stack_start[i + 1] as usize]
    }

    /// Number of stack IDs (including 0).
    pub fn stack_count(&self) -> usize {
        self.stack_start.len() - 1
    }

    /// The flattened stack table: per-stack start offsets (len = stacks + 1) and frame IDs.
    pub fn stack_table(&self) -> (&[u32], &[u32]) {
        (&self.stack_start, &self.stack_frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_by_content() {
        let mut c = Catalog::new();
        assert_eq!(c.string(""), 0);
        let a = c.string("main.main");
        assert_eq!(c.string("main.main"), a);
        let f = Frame {
            pc: 1,
            func: a,
            file: 0,
            line: 3,
        };
        let s1 = c.stack(&[f]);
        let s2 = c.stack(&[f]);
        let empty = c.stack(&[]);
        assert_eq!(s1, s2);
        assert_ne!(s1, 0);
        assert_ne!(empty, 0);
        assert_ne!(empty, s1);
        assert_eq!(c.stack_frames(s1).len(), 1);
        assert_eq!(c.stack_frames(empty).len(), 0);
        assert_eq!(c.stack_frames(0).len(), 0);
        assert_eq!(c.stack_count(), 3);
    }
}
