import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findFlowName } from '../../agent/step/flow-file'
import { FLOWS } from '../helpers/paths'

describe('findFlowName', () => {
  it('finds the class each example flow runs', () => {
    expect(findFlowName(readFileSync(join(FLOWS, 'foreach_flow.py'), 'utf8'))).toBe('ForeachFlow')
    expect(findFlowName(readFileSync(join(FLOWS, 'nested_foreach_flow.py'), 'utf8'))).toBe('NestedForeachFlow')
  })

  it('prefers the class the __main__ guard runs over other FlowSpec subclasses', () => {
    const src = 'class Base(FlowSpec):\n  pass\nclass Real(Base):\n  pass\nif __name__ == "__main__":\n    Real()\n'
    expect(findFlowName(src)).toBe('Real')
  })

  it('gives up rather than guess between two flows without a guard', () => {
    expect(findFlowName('class A(FlowSpec):\n  pass\nclass B(FlowSpec):\n  pass\n')).toBeUndefined()
  })
})
