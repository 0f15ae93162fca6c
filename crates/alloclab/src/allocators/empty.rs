//! The empty call: functions with the allocator ABI that do nothing, called
//! in the same loop as every allocator; what they cost is the loop's and the
//! indirect call's share of every figure (the engine subtracts it).

use std::ffi::c_void;

use plugin_abi::Allocator;
use plugin_abi::loader::PluginApi;

use crate::allocators::table;

unsafe extern "C" fn create(memory: *mut c_void, _size: usize) -> *mut Allocator {
    memory.cast()
}
unsafe extern "C" fn destroy(_a: *mut Allocator) {}
unsafe extern "C" fn alloc(a: *mut Allocator, _size: usize) -> *mut c_void {
    a.cast::<u8>().wrapping_add(64).cast()
}
unsafe extern "C" fn free(_a: *mut Allocator, _p: *mut c_void) {}
unsafe extern "C" fn realloc(a: *mut Allocator, p: *mut c_void, _size: usize) -> *mut c_void {
    if p.is_null() {
        a.cast::<u8>().wrapping_add(64).cast()
    } else {
        p
    }
}

/// The empty function table.
pub fn api() -> PluginApi {
    PluginApi {
        realloc: Some(realloc),
        ..table(create, destroy, alloc, free)
    }
}
